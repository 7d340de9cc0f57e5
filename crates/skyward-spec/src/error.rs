use std::fmt;

/// An input error: file, line (1-based, when known), field path, message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn at(file: &str, line: Option<usize>, field: &str, message: String) -> SpecError {
        SpecError {
            file: file.to_string(),
            line,
            field: field.to_string(),
            message,
        }
    }

    pub fn from_yaml(file: &str, e: &serde_yaml::Error) -> SpecError {
        let line = e.location().map(|l| l.line());
        // serde_yaml puts the field path first ("workloads[0].nodes: …") and
        // the location last (" at line 3 column 5"); keep them apart.
        let mut msg = e.to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        let (mut field, message) = match msg.split_once(": ") {
            Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
            _ => (String::new(), msg),
        };
        // "unknown field `nodez`, expected …": the field is the unknown one.
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
            .map(|(n, _)| n)
        {
            field = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
        }
        SpecError {
            file: file.to_string(),
            line,
            field,
            message,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}
