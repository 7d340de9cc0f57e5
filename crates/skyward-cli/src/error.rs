//! The CLI's one error type: what went wrong, and the exit code for it.

use std::fmt;

#[derive(Debug)]
pub enum CliError {
    /// Bad input: a file, a field, a name. Exit 2.
    Input(String),
    /// A file could not be read or written. Exit 1.
    Io(String),
    /// Something that should not happen. Exit 1.
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Io(_) | CliError::Internal(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Input(m) | CliError::Io(m) | CliError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<skyward_spec::SpecError> for CliError {
    fn from(e: skyward_spec::SpecError) -> Self {
        CliError::Input(e.to_string())
    }
}

impl From<skyward_catalog::CatalogError> for CliError {
    fn from(e: skyward_catalog::CatalogError) -> Self {
        match e {
            skyward_catalog::CatalogError::Io { .. } => CliError::Io(e.to_string()),
            skyward_catalog::CatalogError::Builtin(_) => CliError::Internal(e.to_string()),
            _ => CliError::Input(e.to_string()),
        }
    }
}

pub fn json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Internal(format!("cannot render JSON: {e}")))
}

impl From<skyward_store::StoreError> for CliError {
    fn from(e: skyward_store::StoreError) -> Self {
        if e.is_input() {
            CliError::Input(e.to_string())
        } else {
            CliError::Io(e.to_string())
        }
    }
}

impl From<skyward_app::AppError> for CliError {
    fn from(e: skyward_app::AppError) -> Self {
        // A question's parameter is named as the flag that sets it.
        if let skyward_app::AppError::Field { field, message } = &e {
            let flag = match field.as_str() {
                "contract" => "CONTRACT".to_string(),
                f => format!("--{}", f.replace('_', "-")),
            };
            return CliError::Input(format!("{flag}: {message}"));
        }
        if e.is_input() {
            CliError::Input(e.to_string())
        } else {
            CliError::Io(e.to_string())
        }
    }
}
