//! The admin API for keys: `GET /skyward/admin/keys` lists every key
//! (never a secret), `POST` makes one (its secret shown once, only its
//! SHA-256 kept), `DELETE /skyward/admin/keys/{name}` revokes one made
//! that way. Keys made here live in the config's `admin.keys_file`,
//! written whole and durably, merged with the config's own keys at every
//! load and checked by the same rules; the change applies at once.

use crate::body::GwBody;
use crate::gateway::{openai_error, Gateway};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// The fields a new key may have (as in the config's `keys:`).
const FIELDS: [&str; 7] = [
    "name",
    "tenant",
    "limits",
    "budget_usd",
    "budget_period",
    "models",
    "tags",
];

fn json_reply(status: StatusCode, v: &Value) -> Response<GwBody> {
    let mut r = Response::new(GwBody::full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn bad(status: StatusCode, code: &str, message: &str, param: Option<&str>) -> Response<GwBody> {
    openai_error(status, "invalid_request_error", code, message, param)
}

/// A new key's secret: `sk-sky-` and 48 hex digits from the system's
/// random source.
fn new_secret() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(format!("sk-sky-{}", crate::sigv4::hex(&b)))
}

impl Gateway {
    pub(crate) async fn admin_keys(self: &Arc<Self>, req: Request<Incoming>) -> Response<GwBody> {
        let live = self.live();
        let Some(admin) = live.cfg.admin.clone() else {
            return bad(
                StatusCode::NOT_FOUND,
                "admin_off",
                "The admin API is off: give `admin: {key_env: …}` in the gateway's config.",
                None,
            );
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, k) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| k.trim())
            });
        let ok = given.is_some_and(|k| {
            let h = crate::config::sha256_hex(k);
            // Same length always: compare every byte.
            h.bytes()
                .zip(admin.sha256.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        });
        if !ok {
            return bad(
                StatusCode::UNAUTHORIZED,
                "invalid_admin_key",
                "The admin API takes the admin key (Authorization: Bearer …).",
                None,
            );
        }
        let path = req.uri().path().to_string();
        let name = path
            .strip_prefix("/skyward/admin/keys/")
            .map(str::to_string);
        match (req.method().clone(), name) {
            (Method::GET, None) => self.list_keys(),
            (Method::POST, None) => self.create_key(req, &admin).await,
            (Method::DELETE, Some(n)) => self.delete_key(&n, &admin).await,
            (m, _) => bad(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{m} is not allowed on {path} (GET and POST /skyward/admin/keys, DELETE /skyward/admin/keys/NAME)"),
                None,
            ),
        }
    }

    fn list_keys(&self) -> Response<GwBody> {
        let live = self.live();
        let spent = self.spent_by_key();
        let keys: Vec<Value> = live
            .cfg
            .keys
            .iter()
            .map(|k| {
                json!({
                    "name": k.name, "tenant": k.tenant,
                    "source": if k.managed { "api" } else { "config" },
                    "limits": {"rpm": k.limits.rpm, "tpm": k.limits.tpm, "max_inflight": k.limits.max_inflight},
                    "budget_usd": k.budget_usd,
                    "budget_period": if k.budget_monthly { "month" } else { "total" },
                    "spent_usd": spent.get(&k.name).copied().unwrap_or(0.0),
                    "models": k.models, "tags": k.tags,
                })
            })
            .collect();
        json_reply(StatusCode::OK, &json!({"keys": keys}))
    }

    async fn create_key(
        self: &Arc<Self>,
        req: Request<Incoming>,
        admin: &crate::config::Admin,
    ) -> Response<GwBody> {
        let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "A key is described in at most 64 KiB.",
                    None,
                )
            }
        };
        let v: Value = match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => v,
            _ => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The body must be a JSON object: {\"name\": …, \"tenant\": …, \"limits\": {\"rpm\": …}, \"budget_usd\": …, \"models\": […]}.",
                    None,
                )
            }
        };
        let obj = v.as_object().cloned().unwrap_or_default();
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return bad(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                &format!("unknown field `{k}` (name, tenant, limits, budget_usd, budget_period, models, tags)"),
                Some(k),
            );
        }
        let name = match obj.get("name").and_then(Value::as_str) {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 128
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                n.to_string()
            }
            _ => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "invalid_name",
                    "`name` must be 1 to 128 of A-Z a-z 0-9 . _ -",
                    Some("name"),
                )
            }
        };
        let Some(secret) = new_secret() else {
            return bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_randomness",
                "The system's random source failed.",
                None,
            );
        };
        let mut entry = obj;
        entry.insert(
            "key_sha256".into(),
            json!(crate::config::sha256_hex(&secret)),
        );
        let _one = self.admin_lock.lock().await;
        if self.live().cfg.keys.iter().any(|k| k.name == name) {
            return bad(
                StatusCode::CONFLICT,
                "key_exists",
                &format!("A key named `{name}` exists; revoke it first, or choose another name."),
                Some("name"),
            );
        }
        match self
            .clone()
            .change_keys(admin, move |keys| {
                keys.push(Value::Object(entry));
                Ok(())
            })
            .await
        {
            Ok(()) => json_reply(
                StatusCode::CREATED,
                &json!({"name": name, "key": secret, "note": "The key is shown this once; only its SHA-256 is kept."}),
            ),
            Err((status, msg)) => bad(status, "invalid_key", &msg, None),
        }
    }

    async fn delete_key(
        self: &Arc<Self>,
        name: &str,
        admin: &crate::config::Admin,
    ) -> Response<GwBody> {
        let _one = self.admin_lock.lock().await;
        match self.live().cfg.keys.iter().find(|k| k.name == name) {
            None => {
                return bad(
                    StatusCode::NOT_FOUND,
                    "key_not_found",
                    &format!(
                        "No key is named `{}`.",
                        name.chars().take(128).collect::<String>()
                    ),
                    None,
                )
            }
            Some(k) if !k.managed => {
                return bad(
                    StatusCode::CONFLICT,
                    "key_in_config",
                    &format!("`{name}` is defined in the config file: remove it there."),
                    None,
                )
            }
            Some(_) => {}
        }
        let n = name.to_string();
        match self
            .clone()
            .change_keys(admin, move |keys| {
                keys.retain(|k| k.get("name").and_then(Value::as_str) != Some(n.as_str()));
                Ok(())
            })
            .await
        {
            Ok(()) => {
                let mut r = Response::new(GwBody::full(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Err((status, msg)) => bad(status, "invalid_key", &msg, None),
        }
    }

    /// Changes the keys file, loads the config with it and applies it;
    /// when the result does not load, the file is put back as it was.
    async fn change_keys(
        self: Arc<Self>,
        admin: &crate::config::Admin,
        f: impl FnOnce(&mut Vec<Value>) -> Result<(), String> + Send + 'static,
    ) -> Result<(), (StatusCode, String)> {
        let Some(path) = self.config_path.clone() else {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gateway does not know its config file".into(),
            ));
        };
        let kf = path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&admin.keys_file);
        let gw = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let internal = |m: String| (StatusCode::INTERNAL_SERVER_ERROR, m);
            let before = crate::read_keys_file(&kf).map_err(|e| internal(e.to_string()))?;
            let mut keys = before.clone();
            f(&mut keys).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
            crate::write_keys_file(&kf, &keys).map_err(internal)?;
            match crate::load(&path) {
                Ok(cfg) => {
                    gw.apply(cfg);
                    Ok(())
                }
                Err(e) => {
                    let _ = crate::write_keys_file(&kf, &before);
                    Err((StatusCode::BAD_REQUEST, e.to_string()))
                }
            }
        })
        .await;
        match done {
            Ok(r) => r,
            Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
}
