//! Contracts as stored, versioned objects: a validated contracts file
//! applied becomes the current version (the same content again changes
//! nothing); every version keeps who applied it and when. The ledger
//! commands and the scheduler read the current version.

use crate::AppError;
use serde::Serialize;
use skyward_ledger::contracts::Contract;
use skyward_store::{ContractSet, Store};

/// The largest contracts file accepted (as the spec files).
pub const CONTRACTS_BYTES_MAX: usize = skyward_spec::SPEC_BYTES_MAX;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Applied {
    pub version: i64,
    /// False when the content was the current version already.
    pub changed: bool,
    pub contracts: usize,
}

/// Validates a contracts file's text and stores it as the current
/// version. `by` is who applies it (a token's user, or the OS user).
pub async fn apply(
    store: &Store,
    file_name: &str,
    text: &str,
    by: &str,
    now_s: i64,
) -> Result<Applied, AppError> {
    if text.len() > CONTRACTS_BYTES_MAX {
        return Err(AppError::Input(format!(
            "{file_name}: larger than {} MiB",
            CONTRACTS_BYTES_MAX >> 20
        )));
    }
    if by.len() > 200 || by.chars().any(char::is_control) {
        return Err(AppError::Input(
            "applied by: at most 200 characters, no control characters".into(),
        ));
    }
    let parsed = skyward_spec::contracts::parse(text, file_name)?;
    let (version, changed) = store
        .apply_contracts(file_name, text, parsed.len(), by, now_s)
        .await?;
    Ok(Applied {
        version,
        changed,
        contracts: parsed.len(),
    })
}

/// One version of the contracts, parsed.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub version: i64,
    pub file_name: String,
    pub applied_at: i64,
    pub applied_by: String,
    pub contracts: Vec<Contract>,
    /// The file as applied (the terms above are read from it).
    pub text: String,
}

impl Current {
    /// How it is named in messages: `contracts v3 (deals.yaml)`.
    pub fn source(&self) -> String {
        format!("contracts v{} ({})", self.version, self.file_name)
    }
}

fn parse_set(s: &ContractSet) -> Result<Vec<Contract>, AppError> {
    let shown = format!("contracts v{} ({})", s.version, s.file_name);
    Ok(skyward_spec::contracts::parse(&s.text, &shown)?)
}

/// The current version (or `version`), None when nothing was applied.
pub async fn current(store: &Store, version: Option<i64>) -> Result<Option<Current>, AppError> {
    let Some(set) = store.contract_set(version).await? else {
        return Ok(None);
    };
    Ok(Some(Current {
        contracts: parse_set(&set)?,
        text: set.text,
        version: set.version,
        file_name: set.file_name,
        applied_at: set.applied_at,
        applied_by: set.applied_by,
    }))
}

/// Every version, oldest first, without texts.
pub async fn history(store: &Store) -> Result<Vec<ContractSet>, AppError> {
    Ok(store.contract_history().await?)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub version: i64,
    /// added, changed or removed.
    pub change: &'static str,
    pub applied_at: String,
    pub applied_by: String,
    pub file_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub contract: Contract,
    pub history: Vec<Change>,
}

/// One contract: its current terms, and each version in which it
/// appeared, changed or was removed. Reads one version's text at a time
/// (each may be up to the size limit, and there may be many).
pub async fn show(store: &Store, name: &str) -> Result<Shown, AppError> {
    let mut changes = Vec::new();
    let mut last: Option<Contract> = None;
    for v in store.contract_history().await? {
        let Some(s) = store.contract_set(Some(v.version)).await? else {
            continue;
        };
        let now = parse_set(&s)?.into_iter().find(|c| c.name == name);
        let what = match (&last, &now) {
            (None, Some(_)) => Some("added"),
            (Some(_), None) => Some("removed"),
            (Some(x), Some(y)) if x != y => Some("changed"),
            _ => None,
        };
        if let Some(change) = what {
            changes.push(Change {
                version: s.version,
                change,
                applied_at: skyward_ledger::Timestamp(s.applied_at).date_string(),
                applied_by: s.applied_by.clone(),
                file_name: s.file_name.clone(),
            });
        }
        last = now;
    }
    match last {
        Some(contract) => Ok(Shown {
            contract,
            history: changes,
        }),
        None => {
            let removed = changes
                .last()
                .map(|c| format!(" (removed in version {})", c.version))
                .unwrap_or_default();
            Err(AppError::NotFound(format!(
                "no contract named '{name}' in the current contracts{removed}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const V1: &str = "contracts:\n  - name: edp\n    kind: spend\n    provider: aws\n    start: 2026-01-01\n    term_years: 3\n    commit_usd: 3000000\n    discount_pct: 10\n";

    #[tokio::test]
    async fn versions_changes_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).await.unwrap();
        assert!(current(&store, None).await.unwrap().is_none());
        let a = apply(&store, "c.yaml", V1, "ann", 100).await.unwrap();
        assert_eq!((a.version, a.changed, a.contracts), (1, true, 1));
        let same = apply(&store, "c.yaml", V1, "bob", 200).await.unwrap();
        assert!(!same.changed);
        let v2 = V1.replace("discount_pct: 10", "discount_pct: 12");
        apply(&store, "c.yaml", &v2, "bob", 300).await.unwrap();
        let bad = apply(&store, "bad.yaml", "contracts: [{name: x}]", "eve", 400).await;
        assert!(bad.as_ref().is_err_and(AppError::is_input), "{bad:?}");
        let s = show(&store, "edp").await.unwrap();
        let kinds: Vec<_> = s
            .history
            .iter()
            .map(|c| (c.version, c.change, c.applied_by.as_str()))
            .collect();
        assert_eq!(kinds, vec![(1, "added", "ann"), (2, "changed", "bob")]);
        assert!(matches!(
            show(&store, "nope").await,
            Err(AppError::NotFound(_))
        ));
        let cur = current(&store, None).await.unwrap().unwrap();
        assert_eq!(cur.version, 2);
        assert_eq!(history(&store).await.unwrap().len(), 2);
    }
}
