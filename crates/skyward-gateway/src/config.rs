//! The gateway's configuration file (YAML), parsed in two steps like every
//! Skyward input: serde with unknown fields refused, then validation whose
//! errors name the key (`models.chat.deployments[1].price.input_per_mtok`).
//! API keys are never in the file: a deployment names the environment
//! variable that holds its upstream key, a gateway key is given by the
//! environment variable holding it or by its SHA-256.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Bounds.
pub const MODELS_MAX: usize = 1_000;
pub const DEPLOYMENTS_MAX: usize = 100;
pub const KEYS_MAX: usize = 100_000;
pub const CONFIG_BYTES_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<String>,
    models: BTreeMap<String, RawModel>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    timeouts: Option<RawTimeouts>,
    #[serde(default)]
    retries: Option<RawRetries>,
    #[serde(default)]
    breaker: Option<RawBreaker>,
    #[serde(default)]
    health: Option<RawHealth>,
    #[serde(default)]
    usage_log: Option<String>,
    #[serde(default)]
    max_inflight: Option<u64>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    max_buffered_mb: Option<u64>,
    #[serde(default)]
    tls: Option<RawTls>,
    /// Extra root certificates (PEM) trusted for https upstreams, beside
    /// the Mozilla roots: a private CA in front of self-hosted models.
    #[serde(default)]
    upstream_ca_file: Option<String>,
    #[serde(default)]
    tracing: Option<RawTracing>,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    shared: Option<RawShared>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShared {
    redis_url: String,
    #[serde(default)]
    prefix: Option<String>,
}

/// Limits shared by replicas through Redis (a reload that changes it
/// connects anew).
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    pub target: crate::shared::Target,
    /// Prefix of every Redis key the gateway uses (replicas sharing
    /// limits share it).
    pub prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    key_sha256: Option<String>,
    #[serde(default)]
    keys_file: Option<String>,
}

/// The admin API for keys (`/skyward/admin/keys`).
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// SHA-256 of the admin key (hex).
    pub sha256: String,
    /// Where the keys made through the API are kept (JSON, relative to
    /// the config file): merged with the config's keys at every load.
    pub keys_file: String,
}

/// The default file of the keys made through the admin API.
pub const DEFAULT_KEYS_FILE: &str = "gateway-keys.json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracing {
    otlp_endpoint: String,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    sample_ratio: Option<f64>,
}

/// OpenTelemetry traces (read at start).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// OTLP/HTTP JSON traces endpoint (`http://collector:4318/v1/traces`).
    pub otlp_endpoint: String,
    pub service_name: String,
    /// Share of new traces kept (a client's sampled `traceparent` is
    /// always followed).
    pub sample_ratio: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    latency_bound_ms: Option<f64>,
    #[serde(default)]
    retries: Option<RawRetries>,
    deployments: Vec<RawDeployment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    name: String,
    provider: String,
    region: String,
    url: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    /// HTTP/2 in clear text with prior knowledge, to an `http://` URL
    /// (`https://` upstreams get HTTP/2 by ALPN when they offer it).
    #[serde(default)]
    h2c: bool,
    #[serde(default)]
    auth: Option<String>,
    /// Vertex AI: the service-account key file (JSON), relative to the
    /// config file; else the file named by `credentials_env`
    /// (`GOOGLE_APPLICATION_CREDENTIALS` by default).
    #[serde(default)]
    credentials_file: Option<String>,
    #[serde(default)]
    credentials_env: Option<String>,
    /// Bedrock: the AWS region signed for (the deployment's region when
    /// not given).
    #[serde(default)]
    aws_region: Option<String>,
    /// Bedrock: where the SigV4 credentials are read from.
    #[serde(default)]
    aws_access_key_id_env: Option<String>,
    #[serde(default)]
    aws_secret_access_key_env: Option<String>,
    #[serde(default)]
    aws_session_token_env: Option<String>,
    #[serde(default)]
    capacity: Option<String>,
    #[serde(default)]
    price: Option<RawPrice>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input_per_mtok: f64,
    output_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    rpm: Option<u64>,
    #[serde(default)]
    tpm: Option<u64>,
    #[serde(default)]
    max_inflight: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    key_sha256: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    budget_usd: Option<f64>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    budget_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    connect_ms: Option<u64>,
    #[serde(default)]
    ttft_ms: Option<u64>,
    #[serde(default)]
    total_ms: Option<u64>,
    #[serde(default)]
    client_header_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    backoff_ms: Option<u64>,
    #[serde(default)]
    max_backoff_ms: Option<u64>,
    #[serde(default)]
    on: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    #[serde(default)]
    failures: Option<u32>,
    #[serde(default)]
    cooldown_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    interval_ms: Option<u64>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Committed capacity first; spill to pay-as-you-go; back when it recovers.
    Priority,
    Weighted,
    /// Power of two choices over peak-EWMA latency × in-flight.
    LeastLatency,
    /// Cheapest deployment whose latency is within the bound.
    Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    Committed,
    PayAsYouGo,
}

impl Policy {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Priority => "priority",
            Policy::Weighted => "weighted",
            Policy::LeastLatency => "least-latency",
            Policy::Cost => "cost",
        }
    }
}

impl Capacity {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Capacity::Committed => "committed",
            Capacity::PayAsYouGo => "payg",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_inflight: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub name: String,
    pub provider: String,
    pub region: String,
    /// Base URL without a trailing slash: `https://host:port/v1`, or an
    /// Azure OpenAI deployment URL; the endpoint path
    /// (`/chat/completions`) is appended, then `query`.
    pub url: String,
    /// The query every request carries (`api-version=…` for Azure), from
    /// the URL or `api_version`; empty for none.
    pub query: String,
    pub api: Api,
    /// HTTP/2 in clear text with prior knowledge (an `http://` URL).
    pub h2c: bool,
    /// How the key is sent.
    pub auth: Auth,
    pub upstream_model: String,
    pub api_key: Option<String>,
    /// Bedrock with `auth: sigv4`: the credentials and region signed for.
    pub aws: Option<(crate::sigv4::Credentials, String)>,
    /// Vertex AI: the service account whose OAuth tokens are sent.
    pub google: Option<GoogleAuth>,
    pub capacity: Capacity,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub weight: f64,
    pub limits: Limits,
    /// Lower-case tags: the configured ones plus the region's geography
    /// (from the catalog) and its certifications.
    pub tags: Vec<String>,
}

/// The upstream's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's (and every OpenAI-compatible server's): `{url}/chat/completions`.
    OpenAi,
    /// Azure OpenAI: `{deployment url}/chat/completions?api-version=…`,
    /// the deployment in the path (the body's `model` is not used).
    Azure,
    /// Anthropic Messages: `{url}/messages` (`url` like
    /// `https://api.anthropic.com/v1`), chat completions translated.
    Anthropic,
    /// AWS Bedrock Converse: `{url}/model/{model}/converse` and
    /// `/converse-stream` (`url` like
    /// `https://bedrock-runtime.us-east-1.amazonaws.com`), SigV4-signed.
    Bedrock,
    /// Google Vertex AI's OpenAI-compatible endpoint (`url` like
    /// `https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/us-central1/endpoints/openapi`),
    /// with an OAuth token from a service account.
    Vertex,
}

impl Api {
    /// The provider API a translated deployment speaks (None: OpenAI's
    /// own form, as is).
    pub fn wire(self) -> Option<crate::translate::Wire> {
        match self {
            Api::OpenAi | Api::Azure | Api::Vertex => None,
            Api::Anthropic => Some(crate::translate::Wire::Anthropic),
            Api::Bedrock => Some(crate::translate::Wire::Bedrock),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Azure => "azure",
            Api::Anthropic => "anthropic",
            Api::Bedrock => "bedrock",
            Api::Vertex => "vertex",
        }
    }
}

/// A Vertex AI deployment's service account: the key file, and once the
/// config is loaded (`crate::load`), the token source made from it.
#[derive(Clone)]
pub struct GoogleAuth {
    /// As written (relative to the config file) or from the environment.
    pub file: String,
    /// The config key that named it, for errors.
    pub key: String,
    pub account: Option<std::sync::Arc<gcp_auth::CustomServiceAccount>>,
}

impl std::fmt::Debug for GoogleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAuth")
            .field("file", &self.file)
            .finish()
    }
}

impl PartialEq for GoogleAuth {
    fn eq(&self, o: &GoogleAuth) -> bool {
        self.file == o.file
    }
}

/// The OAuth scope Vertex AI's requests need.
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How a deployment's key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>` (OpenAI; an Entra token for Azure).
    Bearer,
    /// `api-key: <key>` (Azure OpenAI's key).
    ApiKey,
    /// `x-api-key: <key>` (Anthropic's).
    XApiKey,
    /// AWS Signature Version 4 (Bedrock), from `aws`.
    SigV4,
    /// `Authorization: Bearer <OAuth token>` minted from a Google service
    /// account (Vertex AI), from `google`.
    GoogleOAuth,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub policy: Policy,
    pub latency_bound_ms: Option<f64>,
    /// This model's retries (the global ones unless it gives its own).
    pub retries: Retries,
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub tenant: String,
    pub sha256: String,
    /// Every tag must be on a deployment for this key's requests to go there.
    pub tags: Vec<String>,
    pub limits: Limits,
    pub budget_usd: Option<f64>,
    /// The models this key may use (None: all).
    pub models: Option<Vec<String>>,
    /// The budget starts again each calendar month (UTC); else it is for
    /// the key's whole life.
    pub budget_monthly: bool,
    /// Made through the admin API (kept in its keys file), not the config.
    pub managed: bool,
}

impl Key {
    pub fn may_use(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub ttft_ms: u64,
    pub total_ms: u64,
    /// How long a client has to send a request's headers, counted from the
    /// connection's opening or from the end of its last response (so it is
    /// also the keep-alive idle timeout).
    pub client_header_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub max: u32,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// The failures that go on to another deployment; any other is the
    /// client's answer at once.
    pub on: Vec<Failure>,
}

/// A class of upstream failure, for `retries.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// No answer (or first chunk) in time.
    Timeout,
    /// Could not connect, or the connection broke.
    Connect,
    /// 401, 403, 404: the deployment refused the gateway.
    Rejected,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::RateLimited,
        Failure::ServerError,
        Failure::Timeout,
        Failure::Connect,
        Failure::Rejected,
    ];

    fn parse(s: &str) -> Option<Failure> {
        Some(match s {
            "429" | "rate_limited" => Failure::RateLimited,
            "5xx" | "server_error" => Failure::ServerError,
            "timeout" => Failure::Timeout,
            "connect" => Failure::Connect,
            "rejected" | "401" | "403" | "404" => Failure::Rejected,
            _ => return None,
        })
    }
}

/// Retries from their raw form, over `base` (the global ones, or the
/// built-in defaults); errors name `key`.
fn retries_of(
    r: Option<&RawRetries>,
    base: &Retries,
    key: &str,
) -> Result<Retries, (String, String)> {
    let Some(r) = r else {
        return Ok(base.clone());
    };
    let out = Retries {
        max: r.max.unwrap_or(base.max),
        backoff_ms: r.backoff_ms.unwrap_or(base.backoff_ms),
        max_backoff_ms: r.max_backoff_ms.unwrap_or(base.max_backoff_ms),
        on: match &r.on {
            None => base.on.clone(),
            Some(list) => {
                let mut on = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    match Failure::parse(c) {
                        Some(f) => on.push(f),
                        None => {
                            return Err((
                                format!("{key}.on[{i}]"),
                                format!(
                                    "unknown failure '{c}' (429, 5xx, timeout, connect, rejected)"
                                ),
                            ))
                        }
                    }
                }
                on
            }
        },
    };
    if out.max > 10 {
        return Err((format!("{key}.max"), "at most 10".into()));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    pub failures: u32,
    pub cooldown_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// 0: no active checks.
    pub interval_ms: u64,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub listen: String,
    pub models: Vec<Model>,
    pub keys: Vec<Key>,
    pub timeouts: Timeouts,
    pub retries: Retries,
    pub breaker: Breaker,
    pub health: Health,
    pub usage_log: Option<String>,
    /// Requests in flight through the gateway at once; beyond, a quick
    /// 503 instead of queueing without bound (memory stays bounded under
    /// overload).
    pub max_inflight: u64,
    /// Client connections served at once; more wait in the kernel's
    /// backlog (read at start; a reload does not change it).
    pub max_connections: usize,
    /// Request and response bytes held in memory at once, all requests
    /// together (read at start); a request that would go past it gets a
    /// quick 503.
    pub max_buffered_mb: u64,
    /// TLS on the listener: certificate chain and private key files (PEM,
    /// relative to the config file), read at start; `start` loads them.
    pub tls: Option<(String, String)>,
    /// Extra roots for https upstreams (PEM file), read at start.
    pub upstream_ca_file: Option<String>,
    pub tracing: Option<Tracing>,
    pub admin: Option<Admin>,
    pub shared: Option<Shared>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";
pub const DEFAULT_MAX_INFLIGHT: u64 = 2_048;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_024;
/// Bytes of bodies held at once (MiB): bounds memory however many
/// requests are in flight.
pub const DEFAULT_MAX_BUFFERED_MB: u64 = 256;
/// A client's time to send its headers, and a keep-alive connection's
/// idle time (nginx's client_header_timeout and keepalive_timeout are 60 s
/// and 75 s; an API's clients need far less).
pub const DEFAULT_CLIENT_HEADER_MS: u64 = 10_000;

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses and validates. `env` looks up environment variables (the real
/// environment in the binary, a map in tests).
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayConfig, ConfigError> {
    let err = |key: &str, m: String| ConfigError {
        file: file.to_string(),
        key: key.to_string(),
        message: m,
    };
    if text.len() > CONFIG_BYTES_MAX {
        return Err(err("", "the file is larger than 4 MiB".into()));
    }
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        let line = e
            .location()
            .map(|l| format!("line {}", l.line()))
            .unwrap_or_default();
        let (key, message) = match msg.split_once(": ") {
            Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
            _ => (line.clone(), msg.clone()),
        };
        let key = if key.is_empty() { line } else { key };
        err(&key, message)
    })?;
    if raw.models.is_empty() {
        return Err(err("models", "configure at least one model".into()));
    }
    if raw.models.len() > MODELS_MAX {
        return Err(err("models", format!("more than {MODELS_MAX} models")));
    }
    let limits = |l: Option<RawLimits>, key: &str| -> Result<Limits, ConfigError> {
        let l = l.unwrap_or(RawLimits {
            rpm: None,
            tpm: None,
            max_inflight: None,
        });
        for (v, k) in [
            (l.rpm, "rpm"),
            (l.tpm, "tpm"),
            (l.max_inflight, "max_inflight"),
        ] {
            if v == Some(0) {
                return Err(err(
                    &format!("{key}.{k}"),
                    "must be at least 1 (leave it out for no limit)".into(),
                ));
            }
        }
        Ok(Limits {
            rpm: l.rpm,
            tpm: l.tpm,
            max_inflight: l.max_inflight,
        })
    };
    let defaults = Retries {
        max: 2,
        backoff_ms: 25,
        max_backoff_ms: 2_000,
        on: Failure::ALL.to_vec(),
    };
    let retries =
        retries_of(raw.retries.as_ref(), &defaults, "retries").map_err(|(k, m)| err(&k, m))?;
    let mut models = Vec::new();
    for (name, m) in raw.models {
        let mk = format!("models.{name}");
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(err(
                &mk,
                "a model name is 1 to 256 printable characters".into(),
            ));
        }
        let policy = match m.policy.as_deref().unwrap_or("priority") {
            "priority" => Policy::Priority,
            "weighted" => Policy::Weighted,
            "least-latency" => Policy::LeastLatency,
            "cost" => Policy::Cost,
            other => {
                return Err(err(
                    &format!("{mk}.policy"),
                    format!("unknown policy '{other}' (priority, weighted, least-latency, cost)"),
                ))
            }
        };
        if let Some(b) = m.latency_bound_ms {
            if !(b.is_finite() && b > 0.0) {
                return Err(err(
                    &format!("{mk}.latency_bound_ms"),
                    "must be a positive number of milliseconds".into(),
                ));
            }
        }
        if m.deployments.is_empty() || m.deployments.len() > DEPLOYMENTS_MAX {
            return Err(err(
                &format!("{mk}.deployments"),
                format!("list 1 to {DEPLOYMENTS_MAX} deployments"),
            ));
        }
        let mut deployments = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in m.deployments.into_iter().enumerate() {
            let dk = format!("{mk}.deployments[{i}]");
            if !seen.insert(d.name.clone()) {
                return Err(err(
                    &format!("{dk}.name"),
                    format!("duplicate deployment '{}'", d.name),
                ));
            }
            check_url(&d.url).map_err(|m| err(&format!("{dk}.url"), m))?;
            let api_key = match &d.api_key_env {
                Some(var) => Some(env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    err(
                        &format!("{dk}.api_key_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?),
                None => None,
            };
            let capacity = match d.capacity.as_deref().unwrap_or("payg") {
                "committed" | "reserved" | "provisioned" => Capacity::Committed,
                "payg" | "pay-as-you-go" => Capacity::PayAsYouGo,
                other => {
                    return Err(err(
                        &format!("{dk}.capacity"),
                        format!("unknown capacity '{other}' (committed, payg)"),
                    ))
                }
            };
            let (pin, pout) = match d.price {
                Some(p) => (p.input_per_mtok, p.output_per_mtok),
                None => (0.0, 0.0),
            };
            for (v, k) in [(pin, "input_per_mtok"), (pout, "output_per_mtok")] {
                if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                    return Err(err(
                        &format!("{dk}.price.{k}"),
                        "must be a price in $ per million tokens, 0 to 1,000,000".into(),
                    ));
                }
            }
            let api = match d.api.as_deref().unwrap_or("openai") {
                "openai" => Api::OpenAi,
                "azure" | "azure-openai" => Api::Azure,
                "anthropic" => Api::Anthropic,
                "bedrock" | "aws-bedrock" => Api::Bedrock,
                "vertex" | "vertex-ai" => Api::Vertex,
                other => {
                    return Err(err(
                        &format!("{dk}.api"),
                        format!(
                            "unknown API '{other}' (openai, azure, anthropic, bedrock, vertex)"
                        ),
                    ))
                }
            };
            let auth = match (d.auth.as_deref(), api) {
                (None, Api::Azure) | (Some("api-key"), _) => Auth::ApiKey,
                (None, Api::OpenAi) | (Some("bearer"), _) => Auth::Bearer,
                (None, Api::Anthropic) | (Some("x-api-key"), _) => Auth::XApiKey,
                // Bedrock also takes its own API keys as bearer tokens.
                (None, Api::Bedrock) | (Some("sigv4"), Api::Bedrock) => Auth::SigV4,
                (None, Api::Vertex) | (Some("google-oauth"), Api::Vertex) => Auth::GoogleOAuth,
                (Some(other), _) => {
                    return Err(err(
                        &format!("{dk}.auth"),
                        format!(
                            "unknown auth '{other}' for api {} (bearer, api-key, x-api-key{})",
                            api.as_str(),
                            match api {
                                Api::Bedrock => ", sigv4",
                                Api::Vertex => ", google-oauth",
                                _ => "",
                            }
                        ),
                    ))
                }
            };
            let aws = if auth == Auth::SigV4 {
                let var = |given: &Option<String>, default: &str, field: &str, needed: bool| {
                    let name = given.clone().unwrap_or_else(|| default.to_string());
                    match env(&name).filter(|v| !v.is_empty()) {
                        Some(v) => Ok(Some(v)),
                        None if !needed => Ok(None),
                        None => Err(err(
                            &format!("{dk}.{field}"),
                            format!("environment variable {name} is not set: a Bedrock deployment signs with AWS credentials"),
                        )),
                    }
                };
                let id = var(
                    &d.aws_access_key_id_env,
                    "AWS_ACCESS_KEY_ID",
                    "aws_access_key_id_env",
                    true,
                )?;
                let secret = var(
                    &d.aws_secret_access_key_env,
                    "AWS_SECRET_ACCESS_KEY",
                    "aws_secret_access_key_env",
                    true,
                )?;
                let token = var(
                    &d.aws_session_token_env,
                    "AWS_SESSION_TOKEN",
                    "aws_session_token_env",
                    false,
                )?;
                let region = d
                    .aws_region
                    .clone()
                    .unwrap_or_else(|| d.region.clone())
                    .to_ascii_lowercase();
                if region.is_empty()
                    || !region
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(err(
                        &format!("{dk}.aws_region"),
                        format!("'{region}' is not an AWS region (like us-east-1)"),
                    ));
                }
                Some((
                    crate::sigv4::Credentials {
                        access_key_id: id.unwrap_or_default(),
                        secret_access_key: secret.unwrap_or_default(),
                        session_token: token,
                    },
                    region,
                ))
            } else {
                if d.aws_region.is_some()
                    || d.aws_access_key_id_env.is_some()
                    || d.aws_secret_access_key_env.is_some()
                    || d.aws_session_token_env.is_some()
                {
                    return Err(err(
                        &format!("{dk}.auth"),
                        "aws_* settings are for api: bedrock signing with sigv4".into(),
                    ));
                }
                None
            };
            let google = if auth == Auth::GoogleOAuth {
                let (file, key) = match (&d.credentials_file, &d.credentials_env) {
                    (Some(f), None) => (f.clone(), format!("{dk}.credentials_file")),
                    (Some(_), Some(_)) => {
                        return Err(err(
                            &format!("{dk}.credentials_env"),
                            "give credentials_file or credentials_env, not both".into(),
                        ))
                    }
                    (None, e) => {
                        let var = e
                            .clone()
                            .unwrap_or_else(|| "GOOGLE_APPLICATION_CREDENTIALS".into());
                        let f = env(&var).filter(|v| !v.is_empty()).ok_or_else(|| {
                            err(
                                &format!("{dk}.credentials_env"),
                                format!("environment variable {var} is not set: a Vertex AI deployment needs a service-account key file (or credentials_file)"),
                            )
                        })?;
                        (f, format!("{dk}.credentials_env"))
                    }
                };
                Some(GoogleAuth {
                    file,
                    key,
                    account: None,
                })
            } else {
                if d.credentials_file.is_some() || d.credentials_env.is_some() {
                    return Err(err(
                        &format!("{dk}.auth"),
                        "credentials_file and credentials_env are for api: vertex".into(),
                    ));
                }
                None
            };
            // A query in the URL (Azure's ?api-version=…) goes after the
            // endpoint path, not before it.
            let (base, mut query) = match d.url.split_once('?') {
                Some((b, q)) => (b.to_string(), q.to_string()),
                None => (d.url.clone(), String::new()),
            };
            if let Some(v) = &d.api_version {
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                {
                    return Err(err(
                        &format!("{dk}.api_version"),
                        format!("'{v}' is not an API version (like 2024-10-21)"),
                    ));
                }
                if query.split('&').any(|p| p.starts_with("api-version=")) {
                    return Err(err(
                        &format!("{dk}.api_version"),
                        "the URL has an api-version already".into(),
                    ));
                }
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&format!("api-version={v}"));
            }
            if api == Api::Azure && !query.split('&').any(|p| p.starts_with("api-version=")) {
                return Err(err(
                    &format!("{dk}.api_version"),
                    "an Azure OpenAI deployment needs its api-version (api_version: 2024-10-21, or ?api-version= in the URL)".into(),
                ));
            }
            if d.h2c && !base.starts_with("http://") {
                return Err(err(
                    &format!("{dk}.h2c"),
                    "h2c is HTTP/2 in clear text, for an http:// URL; an https:// upstream gets HTTP/2 by ALPN when it offers it".into(),
                ));
            }
            let weight = d.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0 && weight <= 1e6) {
                return Err(err(&format!("{dk}.weight"), "must be above 0".into()));
            }
            let provider = d.provider.to_ascii_lowercase();
            let region = d.region.to_ascii_lowercase();
            let mut tags: Vec<String> = d.tags.iter().map(|t| t.to_ascii_lowercase()).collect();
            let info = skyward_catalog::regions::region_info(&provider, &region);
            if !info.geography.is_empty() {
                tags.push(info.geography.clone());
            }
            tags.extend(info.compliance.iter().map(|c| c.to_ascii_lowercase()));
            tags.sort();
            tags.dedup();
            deployments.push(Deployment {
                upstream_model: d.model.unwrap_or_else(|| name.clone()),
                name: d.name,
                provider,
                region,
                url: base.trim_end_matches('/').to_string(),
                query,
                api,
                h2c: d.h2c,
                auth,
                api_key,
                aws,
                google,
                capacity,
                input_usd_per_mtok: pin,
                output_usd_per_mtok: pout,
                weight,
                limits: limits(d.limits, &format!("{dk}.limits"))?,
                tags,
            });
        }
        let model_retries = retries_of(m.retries.as_ref(), &retries, &format!("{mk}.retries"))
            .map_err(|(k, m)| err(&k, m))?;
        models.push(Model {
            name,
            policy,
            latency_bound_ms: m.latency_bound_ms,
            retries: model_retries,
            deployments,
        });
    }
    if raw.keys.len() > KEYS_MAX {
        return Err(err("keys", format!("more than {KEYS_MAX} keys")));
    }
    let mut keys = Vec::new();
    let mut hashes = std::collections::BTreeSet::new();
    // A key's name is its identity for budgets and usage (so a key can be
    // rotated without resetting them): one key per name.
    let mut names = std::collections::BTreeSet::new();
    for (i, k) in raw.keys.into_iter().enumerate() {
        let kk = format!("keys[{i}]");
        let sha = match (&k.key_env, &k.key_sha256) {
            (Some(var), None) => {
                sha256_hex(&env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    err(
                        &format!("{kk}.key_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?)
            }
            (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                h.to_ascii_lowercase()
            }
            (None, Some(_)) => {
                return Err(err(
                    &format!("{kk}.key_sha256"),
                    "must be 64 hex digits (sha256 of the key)".into(),
                ))
            }
            _ => return Err(err(&kk, "give exactly one of key_env or key_sha256".into())),
        };
        if !hashes.insert(sha.clone()) {
            return Err(err(&kk, "the same key is configured twice".into()));
        }
        if !names.insert(k.name.clone()) {
            return Err(err(
                &format!("{kk}.name"),
                format!(
                    "'{}' names another key too (a key's name carries its budget and usage)",
                    k.name
                ),
            ));
        }
        if let Some(b) = k.budget_usd {
            if !(b.is_finite() && b >= 0.0) {
                return Err(err(
                    &format!("{kk}.budget_usd"),
                    "must be a non-negative amount".into(),
                ));
            }
        }
        keys.push(Key {
            managed: false,
            tenant: k.tenant.unwrap_or_else(|| k.name.clone()),
            name: k.name,
            sha256: sha,
            tags: k.tags.iter().map(|t| t.to_ascii_lowercase()).collect(),
            limits: limits(k.limits, &format!("{kk}.limits"))?,
            budget_usd: k.budget_usd,
            budget_monthly: match k.budget_period.as_deref() {
                None | Some("total") => false,
                Some("month") | Some("monthly") => true,
                Some(other) => {
                    return Err(err(
                        &format!("{kk}.budget_period"),
                        format!("unknown period '{other}' (month, total)"),
                    ))
                }
            },
            models: match k.models {
                None => None,
                Some(list) => {
                    for (j, m) in list.iter().enumerate() {
                        if !models.iter().any(|x: &Model| &x.name == m) {
                            return Err(err(
                                &format!("{kk}.models[{j}]"),
                                format!("no model '{m}' is configured"),
                            ));
                        }
                    }
                    Some(list)
                }
            },
        });
    }
    let t = raw.timeouts;
    let timeouts = Timeouts {
        connect_ms: t.as_ref().and_then(|t| t.connect_ms).unwrap_or(2_000),
        ttft_ms: t.as_ref().and_then(|t| t.ttft_ms).unwrap_or(30_000),
        total_ms: t.as_ref().and_then(|t| t.total_ms).unwrap_or(600_000),
        client_header_ms: t
            .as_ref()
            .and_then(|t| t.client_header_ms)
            .unwrap_or(DEFAULT_CLIENT_HEADER_MS),
    };
    for (v, k) in [
        (timeouts.connect_ms, "connect_ms"),
        (timeouts.ttft_ms, "ttft_ms"),
        (timeouts.total_ms, "total_ms"),
        (timeouts.client_header_ms, "client_header_ms"),
    ] {
        if v == 0 || v > 3_600_000 {
            return Err(err(
                &format!("timeouts.{k}"),
                "must be 1 to 3,600,000 ms".into(),
            ));
        }
    }
    let b = raw.breaker;
    let breaker = Breaker {
        failures: b.as_ref().and_then(|b| b.failures).unwrap_or(5),
        cooldown_ms: b.as_ref().and_then(|b| b.cooldown_ms).unwrap_or(5_000),
    };
    if breaker.failures == 0 {
        return Err(err("breaker.failures", "must be at least 1".into()));
    }
    let h = raw.health;
    let health = Health {
        interval_ms: h.as_ref().and_then(|h| h.interval_ms).unwrap_or(0),
        path: h
            .as_ref()
            .and_then(|h| h.path.clone())
            .unwrap_or_else(|| "/models".into()),
    };
    let listen = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(err("listen", format!("'{listen}' is not an address:port")));
    }
    Ok(GatewayConfig {
        listen,
        tls: raw.tls.map(|t| (t.cert_file, t.key_file)),
        upstream_ca_file: raw.upstream_ca_file.clone(),
        shared: match raw.shared {
            None => None,
            Some(sh) => Some(Shared {
                target: crate::shared::parse_url(&sh.redis_url)
                    .map_err(|m| err("shared.redis_url", m))?,
                prefix: match sh.prefix {
                    Some(p) if p.is_empty() || p.len() > 64 || p.contains(char::is_whitespace) => {
                        return Err(err("shared.prefix", "1 to 64 characters, no spaces".into()))
                    }
                    Some(p) => p,
                    None => "skyward-gateway".into(),
                },
            }),
        },
        admin: match raw.admin {
            None => None,
            Some(a) => Some(Admin {
                sha256: match (&a.key_env, &a.key_sha256) {
                    (Some(var), None) => {
                        sha256_hex(&env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                            err(
                                "admin.key_env",
                                format!("environment variable {var} is not set"),
                            )
                        })?)
                    }
                    (None, Some(h))
                        if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        h.to_ascii_lowercase()
                    }
                    (None, Some(_)) => {
                        return Err(err(
                            "admin.key_sha256",
                            "must be 64 hex digits (sha256 of the key)".into(),
                        ))
                    }
                    _ => {
                        return Err(err(
                            "admin",
                            "give exactly one of key_env or key_sha256".into(),
                        ))
                    }
                },
                keys_file: a.keys_file.unwrap_or_else(|| DEFAULT_KEYS_FILE.into()),
            }),
        },
        tracing: match raw.tracing {
            None => None,
            Some(t) => {
                check_url(&t.otlp_endpoint).map_err(|m| err("tracing.otlp_endpoint", m))?;
                let ratio = t.sample_ratio.unwrap_or(1.0);
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(err("tracing.sample_ratio", "must be 0 to 1".into()));
                }
                Some(Tracing {
                    otlp_endpoint: t.otlp_endpoint,
                    service_name: t.service_name.unwrap_or_else(|| "skyward-gateway".into()),
                    sample_ratio: ratio,
                })
            }
        },
        models,
        keys,
        timeouts,
        retries,
        breaker,
        health,
        usage_log: raw.usage_log,
        max_inflight: match raw.max_inflight {
            Some(0) => return Err(err("max_inflight", "must be at least 1".into())),
            Some(n) => n,
            None => DEFAULT_MAX_INFLIGHT,
        },
        max_connections: match raw.max_connections {
            Some(n) if (1..=1_000_000).contains(&n) => n,
            Some(_) => return Err(err("max_connections", "must be 1 to 1,000,000".into())),
            None => DEFAULT_MAX_CONNECTIONS,
        },
        max_buffered_mb: match raw.max_buffered_mb {
            Some(n) if (64..=1_048_576).contains(&n) => n,
            Some(_) => {
                return Err(err(
                    "max_buffered_mb",
                    "must be 64 to 1,048,576 (a request may be 16 MiB, held up to three times)"
                        .into(),
                ))
            }
            None => DEFAULT_MAX_BUFFERED_MB,
        },
    })
}

/// An `http://` or `https://` URL with a host (no credentials in it).
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("'{url}' is not an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty()
        || authority.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
        || url.parse::<hyper::Uri>().is_err()
    {
        return Err(format!(
            "'{url}' has no usable host (or holds credentials or spaces)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "UP_KEY" => Some("secret".into()),
            "ACME" => Some("acme-key".into()),
            _ => None,
        }
    }

    const GOOD: &str = "
models:
  chat:
    policy: priority
    deployments:
      - {name: azure-ptu, provider: azure, region: westeurope, url: 'http://127.0.0.1:9001/v1/', capacity: committed, api_key_env: UP_KEY, price: {input_per_mtok: 2.5, output_per_mtok: 10}}
      - {name: aws, provider: aws, region: us-east-1, url: 'http://127.0.0.1:9002/v1', model: gpt-x, tags: [hipaa]}
keys:
  - {name: acme-eu, key_env: ACME, tags: [eu], limits: {rpm: 60}, budget_usd: 5}
";

    #[test]
    fn parses_with_region_tags_and_keys_from_the_environment() {
        let c = parse(GOOD, "g.yaml", &env).unwrap();
        let m = &c.models[0];
        assert_eq!(m.policy, Policy::Priority);
        let d = &m.deployments[0];
        assert_eq!(d.url, "http://127.0.0.1:9001/v1");
        assert_eq!(d.api_key.as_deref(), Some("secret"));
        assert_eq!(d.capacity, Capacity::Committed);
        assert!(d.tags.contains(&"eu".to_string()), "{:?}", d.tags);
        assert_eq!(m.deployments[1].upstream_model, "gpt-x");
        assert!(m.deployments[1].tags.contains(&"us".to_string()));
        assert_eq!(c.keys[0].sha256, sha256_hex("acme-key"));
        assert_eq!(c.keys[0].tenant, "acme-eu");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                GOOD.replace("policy: priority", "policy: fastest"),
                "models.chat.policy",
            ),
            (
                GOOD.replace("input_per_mtok: 2.5", "input_per_mtok: -1"),
                "models.chat.deployments[0].price.input_per_mtok",
            ),
            (
                GOOD.replace("'http://127.0.0.1:9002/v1'", "'ftp://x'"),
                "models.chat.deployments[1].url",
            ),
            (
                GOOD.replace("api_key_env: UP_KEY", "api_key_env: NOPE"),
                "models.chat.deployments[0].api_key_env",
            ),
            (GOOD.replace("rpm: 60", "rpm: 0"), "keys[0].limits.rpm"),
            (
                GOOD.replace("capacity: committed", "capacity: free"),
                "models.chat.deployments[0].capacity",
            ),
            (
                format!("{GOOD}  - {{name: acme-eu, key_env: UP_KEY}}\n"),
                "keys[1].name",
            ),
        ];
        for (text, key) in cases {
            let e = parse(&text, "g.yaml", &env).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        let e = parse("models: {}\nbogus: 1\n", "g.yaml", &env).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
    }
}
