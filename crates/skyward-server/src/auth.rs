//! Bearer tokens with scopes. A token is `sky_` + 32 random bytes in hex;
//! only its SHA-256 is stored, so the database never holds a usable
//! secret (a high-entropy token needs no slow hash). Scopes nest:
//! `admin` ⊇ `submit` ⊇ `read`. An `agent` token (stored as
//! `agent:<site>`) grants none of those: it only lets a remote agent act
//! for its one site.

use sha2::{Digest, Sha256};
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// A site's agent: below read, so it reaches no other endpoint.
    Agent,
    Read,
    Submit,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "submit" => Some(Scope::Submit),
            "admin" => Some(Scope::Admin),
            "agent" => Some(Scope::Agent),
            s if s.starts_with("agent:") => Some(Scope::Agent),
            _ => None,
        }
    }

    /// The site an agent token acts for (its stored scope `agent:<site>`).
    pub fn agent_site(stored: &str) -> Option<&str> {
        stored.strip_prefix("agent:").filter(|s| !s.is_empty())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Admin => "admin",
            Scope::Agent => "agent",
        }
    }
}

/// The scope as stored: `agent:<site>` for an agent token (which needs a
/// site that `is_agent_site`), else the scope's name (and no site).
pub fn stored_scope(
    scope: Scope,
    site: Option<&str>,
    is_agent_site: impl Fn(&str) -> bool,
) -> Result<String, String> {
    match (scope, site) {
        (Scope::Agent, Some(s)) if is_agent_site(s) => Ok(format!("agent:{s}")),
        (Scope::Agent, Some(s)) => Err(format!(
            "site '{s}' is not a configured site with executor: agent"
        )),
        (Scope::Agent, None) => Err("an agent token needs the site it acts for".into()),
        (_, Some(_)) => Err("only an agent token is bound to a site".into()),
        (other, None) => Ok(other.as_str().to_string()),
    }
}

pub const TOKEN_PREFIX: &str = "sky_";

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (from the kernel's CSPRNG).
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// A token that could be ours: prefix and 64 hex digits. Anything else is
/// refused without a database lookup.
pub fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_hashed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a));
        assert!(!well_formed("sky_123"));
        assert_eq!(hash(&a).len(), 64);
        assert!(Scope::Admin > Scope::Submit && Scope::Submit > Scope::Read);
    }
}
