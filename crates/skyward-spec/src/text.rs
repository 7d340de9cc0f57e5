//! Checks on text that people read back: names of workloads, tokens,
//! teams and sites, and the nesting depth of documents.

/// Why a name is refused, if it is: control characters, and the
/// invisible or direction-changing ones that make a name display as
/// something else (right-to-left override, zero-width characters, the
/// byte-order mark).
pub fn name_problem(name: &str) -> Option<String> {
    for c in name.chars() {
        if c.is_control() {
            return Some(format!(
                "must not hold control characters (found U+{:04X})",
                c as u32
            ));
        }
        if is_invisible_or_bidi(c) {
            return Some(format!(
                "must not hold invisible or text-direction characters (found U+{:04X})",
                c as u32
            ));
        }
    }
    None
}

/// Bidirectional embeddings, overrides and isolates, marks, zero-width
/// and other invisible formatting characters.
pub fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}' // embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // isolates
        | '\u{061C}'              // Arabic letter mark
        | '\u{00AD}'              // soft hyphen
        | '\u{180E}'              // Mongolian vowel separator
        | '\u{FEFF}'              // zero-width no-break space / BOM
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    )
}

/// Deepest nesting of `[`/`{` in a JSON or YAML flow document, outside
/// quoted strings, in one pass: parsers that recurse take time and stack
/// that grow with depth, so a document deeper than a fixed bound is
/// refused before parsing. Block (indented) YAML is not counted: its
/// depth costs quadratic bytes (a 1 MiB body nests at most ~1,400 levels,
/// which serde_yaml's own recursion limit refuses cheaply), and counting
/// indentation would refuse scripts whose lines are merely indented.
pub fn nesting_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut in_double = false;
    let mut in_single = false;
    let mut escaped = false;
    for b in text.bytes() {
        if b == b'\n' && !in_double {
            in_single = false;
            continue;
        }
        if in_double {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_double = false,
                _ => {}
            }
            continue;
        }
        if in_single {
            if b == b'\'' {
                in_single = false;
            }
            continue;
        }
        match b {
            b'"' => in_double = true,
            b'\'' => in_single = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_hidden_or_reversed_text_are_refused() {
        assert!(name_problem("train-llama").is_none());
        assert!(name_problem("entraînement-日本").is_none());
        assert!(name_problem("evil\u{202E}gpj.exe").is_some());
        assert!(name_problem("a\u{200B}b").is_some());
        assert!(name_problem("a\u{2066}b").is_some());
        assert!(name_problem("a\u{FEFF}").is_some());
        assert!(name_problem("a\tb").is_some());
        assert!(name_problem("a\u{1b}[31m").is_some());
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(nesting_depth(r#"{"a": [1, {"b": 2}]}"#), 3);
        assert_eq!(nesting_depth(r#"{"a": "[[[[[[{{{{"}"#), 1);
        assert_eq!(nesting_depth(r#"{"a": "\"[[["}"#), 1);
        assert_eq!(nesting_depth("a: '[[[['\nb: 1\n"), 0);
        assert_eq!(nesting_depth(&"[".repeat(100_000)), 100_000);
        // Indentation is not nesting: a script's indented or dashed lines
        // must not count.
        let script = format!("run: |\n  echo {}\n{}x\n", "-".repeat(300), " ".repeat(300));
        assert_eq!(nesting_depth(&script), 0);
    }
}
