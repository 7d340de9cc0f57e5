//! Finds the line of a field in YAML source, for errors found after
//! deserialisation (serde_yaml values carry no spans). Heuristic but
//! bounded: it scans the text once per lookup.

/// Line (1-based) of the `index`-th item of the top-level list `section`,
/// then of `key` inside it when given. Falls back to the item's line, then
/// the section's line.
pub fn line_of(text: &str, section: &str, index: usize, key: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let section_line = lines.iter().position(|l| {
        l.trim_end() == format!("{section}:") || l.starts_with(&format!("{section}:"))
    })?;
    let mut item_indent: Option<usize> = None;
    let mut count = 0usize;
    let mut item_start = None;
    let mut item_end = lines.len();
    for (i, l) in lines.iter().enumerate().skip(section_line + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        if indent == 0 {
            if item_start.is_some() {
                item_end = i;
            }
            break;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            let ind = *item_indent.get_or_insert(indent);
            if indent == ind {
                if item_start.is_some() {
                    item_end = i;
                    break;
                }
                if count == index {
                    item_start = Some(i);
                }
                count += 1;
            }
        }
    }
    let start = match item_start {
        Some(s) => s,
        None => return Some(section_line + 1),
    };
    if let Some(k) = key {
        for (i, l) in lines.iter().enumerate().take(item_end).skip(start) {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            if t.starts_with(&format!("{k}:"))
                || l.contains(&format!("{{{k}:"))
                || l.contains(&format!(", {k}:"))
                || l.contains(&format!("{{ {k}:"))
            {
                return Some(i + 1);
            }
        }
    }
    Some(start + 1)
}

/// Line (1-based) of a top-level or nested `key:` anywhere, first match.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(&format!("{key}:"))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_items_and_keys() {
        let text = "workloads:\n  - name: a\n    nodes: 2\n  - name: b\n    hours: 3\n    nodes: 4\ncapacity: []\n";
        assert_eq!(line_of(text, "workloads", 0, None), Some(2));
        assert_eq!(line_of(text, "workloads", 1, Some("nodes")), Some(6));
        assert_eq!(line_of(text, "workloads", 1, Some("missing")), Some(4));
        assert_eq!(line_of(text, "capacity", 0, None), Some(7));
        let flow =
            "quotas:\n  - {provider: gcp, region: us-central1, accelerator: H100, max: 256}\n";
        assert_eq!(line_of(flow, "quotas", 0, Some("max")), Some(2));
    }
}
