//! Questions as data: each use case's parameters are one struct that the
//! CLI fills from its flags and the HTTP API reads from a query string
//! ([`from_query`]); the CLI sends the same struct to a server with
//! [`to_query`]. A wrong value is an [`AppError::Field`] naming the field,
//! which each edge words its own way (`--discount-pct` on the command
//! line, `discount_pct` in the API's error).

use crate::AppError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Longest query string read (the questions' parameters are a few short
/// values).
pub const QUERY_BYTES_MAX: usize = 4096;

/// Reads a question's parameters from a URL query string (without `?`).
/// Unknown parameters, repeated ones and values of the wrong type are
/// refused, naming the parameter.
pub fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    if query.len() > QUERY_BYTES_MAX {
        return Err(AppError::Input(format!(
            "the query string is longer than {QUERY_BYTES_MAX} bytes"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(k.clone()) {
            return Err(AppError::field(&k, "given more than once"));
        }
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names an unknown field in its message; the path is "." then.
        match inner.strip_prefix("unknown field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or("").to_string();
                AppError::field(&name, "not a parameter of this question")
            }
            None if path == "." || path.is_empty() => AppError::Input(inner),
            None => AppError::field(&path, &inner),
        }
    })
}

/// One query value, percent-encoded (every byte but unreserved ones as
/// `%XX`, a space as `%20`): a value with `&`, `=` or `+` stays one value.
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes a question's parameters as a URL query string (fields that are
/// `None` are left out).
pub fn to_query<T: Serialize>(q: &T) -> Result<String, AppError> {
    serde_urlencoded::to_string(q).map_err(|e| AppError::Input(format!("query: {e}")))
}

/// A list of whole numbers written `7,30,60` (a query string has no
/// lists).
pub mod comma_u32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u32>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(v) => s.serialize_str(&v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        text.split(',')
            .map(|p| {
                p.trim().parse::<u32>().map_err(|_| {
                    serde::de::Error::custom(format!("'{p}' is not a whole number (give 7,30,60)"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// A list of words written `a,b` (see [`comma_u32`]).
pub mod comma_text {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ptr_arg)] // serde's `with` passes the field as it is
    pub fn serialize<S: Serializer>(v: &Vec<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let text = String::deserialize(d)?;
        Ok(text
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect())
    }
}

/// A finite number in `range`, else a field error.
pub fn check_f64(
    field: &str,
    v: f64,
    ok: impl Fn(f64) -> bool,
    what: &str,
) -> Result<f64, AppError> {
    if v.is_finite() && ok(v) {
        Ok(v)
    } else {
        Err(AppError::field(field, what))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Q {
        provider: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        discount_pct: Option<f64>,
        #[serde(default, with = "comma_u32", skip_serializing_if = "Option::is_none")]
        lookback_days: Option<Vec<u32>>,
        #[serde(default)]
        what_if: bool,
    }

    fn field_of(e: AppError) -> (String, String) {
        match e {
            AppError::Field { field, message } => (field, message),
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn a_question_goes_through_a_query_string_unchanged() {
        let q = Q {
            provider: "aws & co/é".into(),
            discount_pct: Some(28.5),
            lookback_days: Some(vec![7, 30, 60]),
            what_if: true,
        };
        let text = to_query(&q).unwrap();
        assert_eq!(from_query::<Q>(&text).unwrap(), q);
        let bare: Q = from_query("provider=gcp").unwrap();
        assert_eq!(bare.discount_pct, None);
        assert!(!bare.what_if);
    }

    #[test]
    fn wrong_parameters_are_named() {
        let (f, m) = field_of(from_query::<Q>("provider=aws&discount_pct=lots").unwrap_err());
        assert_eq!(f, "discount_pct", "{m}");
        let (f, _) = field_of(from_query::<Q>("provider=aws&lookback_days=7,x").unwrap_err());
        assert_eq!(f, "lookback_days");
        let (f, _) = field_of(from_query::<Q>("provider=aws&colour=red").unwrap_err());
        assert_eq!(f, "colour");
        let (f, _) = field_of(from_query::<Q>("provider=aws&provider=gcp").unwrap_err());
        assert_eq!(f, "provider");
        let missing = from_query::<Q>("").unwrap_err().to_string();
        assert!(missing.contains("provider"), "{missing}");
        let long = format!("provider={}", "a".repeat(QUERY_BYTES_MAX));
        assert!(matches!(from_query::<Q>(&long), Err(AppError::Input(_))));
    }
}
