//! The server's configuration file (`skyward server --config FILE`) and
//! the built-in one `skyward up` uses. Parsed in two steps like every
//! Skyward input: serde with unknown fields refused, then validation with
//! errors naming the field.

use serde::Deserialize;
use skyward_catalog::Catalog;
use skyward_core::SiteSpec;
use skyward_model::{RegionKey, Usd};
use skyward_spec::SpecError;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
/// Sites one server may drive.
pub const SITES_MAX: usize = 1_000;
pub const SITE_ACCELERATORS_MAX: u32 = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    database_url: Option<String>,
    #[serde(default)]
    sites: Vec<RawSite>,
    #[serde(default)]
    scheduler: Option<RawScheduler>,
    #[serde(default)]
    work_dir: Option<PathBuf>,
    #[serde(default)]
    run_as: Option<String>,
    #[serde(default)]
    secrets: std::collections::BTreeMap<String, RawSecret>,
    /// Team name → weight (fair share) and quota.
    #[serde(default)]
    teams: std::collections::BTreeMap<String, RawTeam>,
    /// Where workloads may keep checkpoints, with the credentials.
    #[serde(default)]
    object_stores: Vec<RawObjectStore>,
    /// Inference gateways whose metrics the dashboard shows.
    #[serde(default)]
    gateways: Vec<RawGateway>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    name: String,
    metrics_url: String,
    /// How often the server reads it for the traffic-over-time charts
    /// (`10s` by default, 1 s to 1 h).
    #[serde(default)]
    sample_every: Option<String>,
}

/// An inference gateway (`skyward gateway run`) whose `/metrics` page the
/// dashboard's gateway page reads through the server.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub name: String,
    /// `http://host:port/metrics`.
    pub metrics_url: String,
    /// How often the server samples it for the charts over time.
    pub sample_every_ms: u64,
}

pub const GATEWAYS_MAX: usize = 16;
/// Default spacing of a gateway's samples.
pub const GATEWAY_SAMPLE_MS: u64 = 10_000;

impl GatewayConfig {
    /// Checked: a short name, and a plain `http://host:port/path` address.
    pub fn new(name: &str, metrics_url: &str) -> Result<GatewayConfig, (&'static str, String)> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(("name", "1 to 64 characters, no control characters".into()));
        }
        let ok = metrics_url
            .strip_prefix("http://")
            .is_some_and(|rest| rest.contains('/') && !rest.starts_with('/'));
        if !ok || metrics_url.len() > 1024 || metrics_url.chars().any(char::is_whitespace) {
            return Err((
                "metrics_url",
                format!("'{metrics_url}' is not an http://host:port/path address (the gateway's /metrics)"),
            ));
        }
        Ok(GatewayConfig {
            name: name.to_string(),
            metrics_url: metrics_url.to_string(),
            sample_every_ms: GATEWAY_SAMPLE_MS,
        })
    }
}

fn gateways(raw: Vec<RawGateway>, text: &str, file: &str) -> Result<Vec<GatewayConfig>, SpecError> {
    if raw.len() > GATEWAYS_MAX {
        return Err(SpecError::at(
            file,
            skyward_spec::locate::line_of_key(text, "gateways"),
            "gateways",
            format!("more than {GATEWAYS_MAX} gateways"),
        ));
    }
    let mut out: Vec<GatewayConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |k: &str, m: String| {
            let line = skyward_spec::locate::line_of(text, "gateways", i, Some(k));
            SpecError::at(file, line, &format!("gateways[{i}].{k}"), m)
        };
        let mut g = GatewayConfig::new(&r.name, &r.metrics_url).map_err(|(k, m)| at(k, m))?;
        if let Some(every) = &r.sample_every {
            let ms = skyward_spec::job::parse_duration_ms(every)
                .ok()
                .filter(|ms| (1_000..=3_600_000).contains(ms))
                .ok_or_else(|| {
                    at(
                        "sample_every",
                        format!("'{every}': from 1s to 1h (for example 10s)"),
                    )
                })?;
            g.sample_every_ms = ms;
        }
        if out.iter().any(|x| x.name == g.name) {
            return Err(at("name", format!("'{}' is configured twice", g.name)));
        }
        out.push(g);
    }
    Ok(out)
}

/// One object store workloads may checkpoint to. Credentials are names
/// of the config's `secrets:`, never values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectStore {
    uri: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key_id_secret: Option<String>,
    #[serde(default)]
    secret_access_key_secret: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    access_key_secret: Option<String>,
    #[serde(default)]
    service_account_key_secret: Option<String>,
    #[serde(default)]
    reachable_from: Option<Vec<String>>,
}

/// Object stores one server may know.
pub const OBJECT_STORES_MAX: usize = 100;

/// A configured object store, its credentials still secret names
/// (resolved at start with the other secrets).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectStoreConfig {
    pub uri: skyward_model::StoreUri,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    /// Field (access_key_id, secret_access_key, access_key,
    /// service_account_key) → secret name.
    pub secrets: std::collections::BTreeMap<&'static str, String>,
    pub reach: skyward_checkpoint::Reach,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    max_accelerators: Option<u32>,
}

/// Where a secret's value comes from: an environment variable of the
/// server or a file (its contents, without a final newline).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// Secrets the server holds for workloads at most.
pub const SECRETS_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default)]
    name: Option<String>,
    region: String,
    accelerator: String,
    accelerators: u32,
    #[serde(default)]
    price_basis: Option<String>,
    #[serde(default)]
    price_usd_per_accelerator_hour: Option<f64>,
    /// `local` (default) or `slurm`.
    #[serde(default)]
    executor: Option<String>,
    /// For `executor: slurm`: the cluster's slurm.conf (default: Slurm's).
    #[serde(default)]
    slurm_conf: Option<String>,
    /// For `executor: slurm`: slurmrestd (`unix:/path` or
    /// `http://host:port`), spoken first; the commands are the fallback.
    #[serde(default)]
    slurm_rest: Option<String>,
    /// Its API version (default v0.0.38, Slurm 22.05's).
    #[serde(default)]
    slurm_rest_version: Option<String>,
    /// For `executor: local`: start a run whose variant names an `image`
    /// in it with this docker-compatible runtime (`podman`, `docker`).
    #[serde(default)]
    container_runtime: Option<String>,
    /// Arguments for each `RUNTIME run` (`[--gpus, all]`).
    #[serde(default)]
    container_args: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    #[serde(default)]
    cycle_ms: Option<u64>,
    #[serde(default)]
    dispatch_timeout_ms: Option<u64>,
    #[serde(default)]
    heartbeat_timeout_ms: Option<u64>,
    #[serde(default)]
    lease_ms: Option<u64>,
    /// How long a place that failed a workload is avoided (first failure;
    /// doubling after, up to an hour).
    #[serde(default)]
    failover_backoff_ms: Option<u64>,
    /// How often the leader lists running workloads' checkpoint stores.
    #[serde(default)]
    checkpoint_scan_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceBasis {
    OnDemand,
    Spot,
    Reserved,
}

impl PriceBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceBasis::OnDemand => "on-demand",
            PriceBasis::Spot => "spot",
            PriceBasis::Reserved => "reserved",
        }
    }
}

/// How a site runs its work.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SiteExecutor {
    /// Processes on the server's machine.
    #[default]
    Local,
    /// Jobs of a Slurm cluster the server's machine submits to (its work
    /// directory on a file system the nodes share); the cluster's
    /// slurm.conf, else Slurm's default.
    Slurm {
        conf: Option<PathBuf>,
        /// slurmrestd, spoken first when given (not stored with the site:
        /// a site that left the configuration is reached by the commands).
        rest: Option<skyward_executor::slurm_rest::SlurmRest>,
    },
    /// A remote agent (`skyward agent`) that connects to the server and
    /// runs the work next to its cluster; this entry is its grant.
    Agent,
}

impl SiteExecutor {
    /// As stored with the site: `local` or `slurm:<conf>`.
    pub fn as_stored(&self) -> String {
        match self {
            SiteExecutor::Local => "local".into(),
            SiteExecutor::Agent => "agent".into(),
            SiteExecutor::Slurm { conf, .. } => format!(
                "slurm:{}",
                conf.as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }

    pub fn from_stored(s: &str) -> SiteExecutor {
        match s.strip_prefix("slurm:") {
            Some("") => SiteExecutor::Slurm {
                conf: None,
                rest: None,
            },
            Some(c) => SiteExecutor::Slurm {
                conf: Some(PathBuf::from(c)),
                rest: None,
            },
            None if s == "agent" => SiteExecutor::Agent,
            None => SiteExecutor::Local,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    pub spec: SiteSpec,
    pub price_basis: PriceBasis,
    /// Where the price came from (catalog row or the config).
    pub price_source: String,
    pub executor: SiteExecutor,
    /// Local sites: the runtime a run with an image starts in.
    pub container: Option<skyward_executor::local::Container>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// None: SQLite at `<data_dir>/skyward.db`.
    pub database_url: Option<String>,
    pub sites: Vec<Site>,
    pub core: skyward_core::Config,
    /// Leadership lease (several replicas on PostgreSQL).
    pub lease_ms: u64,
    /// Where runs' directories go (outside the state directory); None:
    /// next to it (see `lib.rs::work_dir`).
    pub work_dir: Option<PathBuf>,
    /// The user runs become when the server is root (default `nobody`).
    pub run_as: Option<String>,
    /// Secrets workloads may reference by name.
    pub secrets: std::collections::BTreeMap<String, SecretSource>,
    /// Where workloads may keep checkpoints (`object_stores:`).
    pub object_stores: Vec<ObjectStoreConfig>,
    /// How often the leader lists running workloads' checkpoint stores.
    pub checkpoint_scan_ms: u64,
    /// Gateways whose metrics the dashboard shows (`gateways:`).
    pub gateways: Vec<GatewayConfig>,
}

pub const CHECKPOINT_SCAN_MS_DEFAULT: u64 = 2_000;

/// Per-accelerator-hour price of `accelerator` in `region` from the
/// catalog: the cheapest offering's hourly price divided by its count.
pub fn catalog_price(
    catalog: &Catalog,
    region: &RegionKey,
    accelerator: &str,
    basis: PriceBasis,
) -> Option<(Usd, String)> {
    catalog
        .offerings
        .iter()
        .filter(|o| o.region == *region && o.accelerator.eq_ignore_ascii_case(accelerator))
        .filter_map(|o| {
            let hourly = match basis {
                PriceBasis::Spot => o.spot_usd_per_hour?,
                _ => o.on_demand_usd_per_hour?,
            };
            let per = Usd::from_micros(hourly.micros() / i64::from(o.accelerator_count.max(1)));
            Some((per, format!("catalog {} {}", o.sku, basis.as_str())))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)))
}

pub fn parse(text: &str, file: &str, catalog: &Catalog) -> Result<ServerConfig, SpecError> {
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    let at = |field: String, m: String| {
        let key = field.rsplit('.').next().unwrap_or("").to_string();
        let line = skyward_spec::locate::line_of(text, "sites", field_index(&field), Some(&key));
        SpecError::at(file, line, &field, m)
    };
    if raw.sites.len() > SITES_MAX {
        return Err(SpecError::at(
            file,
            None,
            "sites",
            format!("more than {SITES_MAX} sites"),
        ));
    }
    let mut sites = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let known = skyward_spec::fleet::known_accelerators(catalog);
    for (i, s) in raw.sites.into_iter().enumerate() {
        let f = |k: &str| format!("sites[{i}].{k}");
        let region = RegionKey::parse(&s.region.to_ascii_lowercase()).ok_or_else(|| {
            at(
                f("region"),
                format!("'{}' is not provider:region (e.g. aws:us-east-1)", s.region),
            )
        })?;
        if !catalog.regions().contains(&region) {
            return Err(at(f("region"), format!("'{region}' is not in the catalog")));
        }
        let accelerator = known
            .iter()
            .find(|a| a.eq_ignore_ascii_case(&s.accelerator))
            .cloned()
            .ok_or_else(|| {
                at(
                    f("accelerator"),
                    format!("unknown accelerator '{}'", s.accelerator),
                )
            })?;
        if s.accelerators == 0 || s.accelerators > SITE_ACCELERATORS_MAX {
            return Err(at(
                f("accelerators"),
                format!("must be 1 to {SITE_ACCELERATORS_MAX}"),
            ));
        }
        let basis = match s.price_basis.as_deref().unwrap_or("on-demand") {
            "on-demand" => PriceBasis::OnDemand,
            "spot" => PriceBasis::Spot,
            "reserved" => PriceBasis::Reserved,
            other => {
                return Err(at(
                    f("price_basis"),
                    format!("unknown price basis '{other}' (on-demand, spot, reserved)"),
                ))
            }
        };
        let (price, source) = match s.price_usd_per_accelerator_hour {
            Some(p) => (
                Usd::from_f64_rounded(p)
                    .filter(|u| *u >= Usd::ZERO)
                    .ok_or_else(|| {
                        at(
                            f("price_usd_per_accelerator_hour"),
                            "must be a non-negative amount".into(),
                        )
                    })?,
                "configured".to_string(),
            ),
            None if basis == PriceBasis::Reserved => {
                return Err(at(
                    f("price_usd_per_accelerator_hour"),
                    "a reserved site needs its contracted price".into(),
                ))
            }
            None => catalog_price(catalog, &region, &accelerator, basis).ok_or_else(|| {
                at(
                    f("price_usd_per_accelerator_hour"),
                    format!(
                        "the catalog has no {} {accelerator} price in {region}; set one",
                        basis.as_str()
                    ),
                )
            })?,
        };
        let name = s.name.unwrap_or_else(|| region.to_string());
        if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(at(f("name"), "must be 1 to 128 characters, no '/'".into()));
        }
        if let Some(problem) = skyward_spec::text::name_problem(&name) {
            return Err(at(f("name"), problem));
        }
        if !names.insert(name.clone()) {
            return Err(at(f("name"), format!("duplicate site name '{name}'")));
        }
        let is_slurm = s.executor.as_deref() == Some("slurm");
        if !is_slurm && (s.slurm_rest.is_some() || s.slurm_rest_version.is_some()) {
            let k = if s.slurm_rest.is_some() {
                "slurm_rest"
            } else {
                "slurm_rest_version"
            };
            return Err(at(f(k), "only for executor: slurm".into()));
        }
        let rest = match (&s.slurm_rest, &s.slurm_rest_version) {
            (None, Some(_)) => {
                return Err(at(f("slurm_rest_version"), "give slurm_rest too".into()))
            }
            (None, None) => None,
            (Some(t), v) => Some(
                skyward_executor::slurm_rest::SlurmRest::parse(
                    t,
                    v.as_deref().unwrap_or("v0.0.38"),
                )
                .map_err(|m| {
                    let k = if m.contains("v0.0.38 or later") {
                        "slurm_rest_version"
                    } else {
                        "slurm_rest"
                    };
                    at(f(k), m)
                })?,
            ),
        };
        let container = match (s.container_runtime, s.container_args) {
            (None, Some(_)) => {
                return Err(at(f("container_args"), "give container_runtime too".into()))
            }
            (None, None) => None,
            (Some(_), _) if s.executor.as_deref().is_some_and(|e| e != "local") => {
                return Err(at(
                    f("container_runtime"),
                    "only for executor: local (an agent takes --container-runtime)".into(),
                ))
            }
            (Some(r), args) => Some(
                skyward_executor::local::Container::new(r, args.unwrap_or_default()).map_err(
                    |m| match m.split_once(": ") {
                        Some(("args", m)) => at(f("container_args"), m.to_string()),
                        Some((_, m)) => at(f("container_runtime"), m.to_string()),
                        None => at(f("container_runtime"), m),
                    },
                )?,
            ),
        };
        let executor = match (s.executor.as_deref().unwrap_or("local"), s.slurm_conf) {
            ("local", None) => SiteExecutor::Local,
            ("local", Some(_)) => {
                return Err(at(f("slurm_conf"), "only for executor: slurm".into()))
            }
            ("agent", None) => SiteExecutor::Agent,
            ("agent", Some(_)) => {
                return Err(at(
                    f("slurm_conf"),
                    "only for executor: slurm (an agent names its own cluster)".into(),
                ))
            }
            ("slurm", conf) => {
                let conf = conf.map(PathBuf::from);
                if let Some(c) = &conf {
                    if !c.is_absolute() || c.display().to_string().contains(char::is_whitespace) {
                        return Err(at(
                            f("slurm_conf"),
                            "an absolute path without spaces".into(),
                        ));
                    }
                }
                SiteExecutor::Slurm { conf, rest }
            }
            (other, _) => {
                return Err(at(
                    f("executor"),
                    format!("unknown executor '{other}' (local, slurm, agent)"),
                ))
            }
        };
        sites.push(Site {
            executor,
            container,
            spec: SiteSpec {
                name,
                region,
                accelerator,
                accelerators: s.accelerators,
                price_usd_per_accelerator_hour: price,
                spot: basis == PriceBasis::Spot,
                prepaid: basis == PriceBasis::Reserved,
            },
            price_basis: basis,
            price_source: source,
        });
    }
    let mut core = skyward_core::Config::default();
    let mut lease_ms = 10_000;
    let mut checkpoint_scan_ms = CHECKPOINT_SCAN_MS_DEFAULT;
    if let Some(s) = raw.scheduler {
        let check = |v: Option<u64>, k: &str, lo: u64, hi: u64| -> Result<Option<u64>, SpecError> {
            match v {
                Some(x) if x < lo || x > hi => Err(SpecError::at(
                    file,
                    skyward_spec::locate::line_of_key(text, k),
                    &format!("scheduler.{k}"),
                    format!("must be {lo} to {hi}"),
                )),
                other => Ok(other),
            }
        };
        if let Some(v) = check(s.cycle_ms, "cycle_ms", 1, 3_600_000)? {
            core.cycle_ms = v;
        }
        if let Some(v) = check(
            s.dispatch_timeout_ms,
            "dispatch_timeout_ms",
            100,
            86_400_000,
        )? {
            core.dispatch_timeout_ms = v;
        }
        if let Some(v) = check(
            s.heartbeat_timeout_ms,
            "heartbeat_timeout_ms",
            100,
            86_400_000,
        )? {
            core.heartbeat_timeout_ms = v;
        }
        if let Some(v) = check(s.lease_ms, "lease_ms", 1_000, 600_000)? {
            lease_ms = v;
        }
        if let Some(v) = check(s.checkpoint_scan_ms, "checkpoint_scan_ms", 100, 600_000)? {
            checkpoint_scan_ms = v;
        }
        if let Some(v) = check(s.failover_backoff_ms, "failover_backoff_ms", 0, 86_400_000)? {
            core.failover_backoff_ms = v;
            core.failover_backoff_max_ms = core.failover_backoff_max_ms.max(v);
        }
    }
    for (name, t) in &raw.teams {
        let field = format!("teams.{name}");
        if !crate::http::valid_team(name) {
            return Err(SpecError::at(
                file,
                skyward_spec::locate::line_of_key(text, name),
                &field,
                "a team name is 1 to 64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        let weight = t.weight.unwrap_or(1.0);
        if !(weight.is_finite() && (0.001..=1_000_000.0).contains(&weight)) {
            return Err(SpecError::at(
                file,
                skyward_spec::locate::line_of_key(text, "weight")
                    .or_else(|| skyward_spec::locate::line_of_key(text, name)),
                &format!("{field}.weight"),
                "must be a number from 0.001 to 1000000".into(),
            ));
        }
        core.teams.insert(
            name.clone(),
            skyward_core::policy::Team {
                weight,
                max_accelerators: t.max_accelerators,
            },
        );
    }
    let listen = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(SpecError::at(
            file,
            skyward_spec::locate::line_of_key(text, "listen"),
            "listen",
            format!("'{listen}' is not an address:port"),
        ));
    }
    if raw.secrets.len() > SECRETS_MAX {
        return Err(SpecError::at(
            file,
            skyward_spec::locate::line_of_key(text, "secrets"),
            "secrets",
            format!("more than {SECRETS_MAX} secrets"),
        ));
    }
    let mut secrets = std::collections::BTreeMap::new();
    for (name, src) in raw.secrets {
        let field = format!("secrets.{name}");
        let err = |m: String| {
            SpecError::at(
                file,
                skyward_spec::locate::line_of_key(text, &name),
                &field,
                m,
            )
        };
        if !skyward_spec::job::valid_secret_name(&name) {
            return Err(err(
                "a secret's name is letters, digits, '.', '_', '-'".into()
            ));
        }
        let source = match (src.env, src.file) {
            (Some(v), None) if !v.is_empty() => SecretSource::Env(v),
            (None, Some(p)) => SecretSource::File(p),
            _ => return Err(err("give exactly one of env: VARIABLE or file: PATH".into())),
        };
        secrets.insert(name, source);
    }
    if let Some(u) = &raw.run_as {
        if u.is_empty() || u.len() > 64 || u.contains([':', '/', '\n']) {
            return Err(SpecError::at(
                file,
                skyward_spec::locate::line_of_key(text, "run_as"),
                "run_as",
                "a user name".into(),
            ));
        }
    }
    let object_stores = object_stores(raw.object_stores, &secrets, text, file)?;
    let gateways = gateways(raw.gateways, text, file)?;
    Ok(ServerConfig {
        gateways,
        object_stores,
        checkpoint_scan_ms,
        listen,
        data_dir: raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from("skyward-data")),
        database_url: raw.database_url,
        sites,
        core,
        lease_ms,
        work_dir: raw.work_dir,
        run_as: raw.run_as,
        secrets,
    })
}

fn object_stores(
    raw: Vec<RawObjectStore>,
    secrets: &std::collections::BTreeMap<String, SecretSource>,
    text: &str,
    file: &str,
) -> Result<Vec<ObjectStoreConfig>, SpecError> {
    use skyward_model::{Scheme, StoreUri};
    if raw.len() > OBJECT_STORES_MAX {
        return Err(SpecError::at(
            file,
            skyward_spec::locate::line_of_key(text, "object_stores"),
            "object_stores",
            format!("more than {OBJECT_STORES_MAX} stores"),
        ));
    }
    let mut out: Vec<ObjectStoreConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |k: &str, m: String| {
            let line = skyward_spec::locate::line_of(text, "object_stores", i, Some(k));
            SpecError::at(file, line, &format!("object_stores[{i}].{k}"), m)
        };
        let uri = StoreUri::parse(&r.uri).map_err(|m| at("uri", m))?;
        if out.iter().any(|o| o.uri == uri) {
            return Err(at("uri", format!("'{uri}' is configured twice")));
        }
        if let Some(e) = &r.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() > 1024 {
                return Err(at(
                    "endpoint",
                    format!("'{e}' is not an http:// or https:// address"),
                ));
            }
        }
        let mut names = std::collections::BTreeMap::new();
        for (field, name, scheme) in [
            ("access_key_id", r.access_key_id_secret, Scheme::S3),
            ("secret_access_key", r.secret_access_key_secret, Scheme::S3),
            ("access_key", r.access_key_secret, Scheme::Azure),
            (
                "service_account_key",
                r.service_account_key_secret,
                Scheme::Gcs,
            ),
        ] {
            let Some(name) = name else { continue };
            let key = format!("{field}_secret");
            if uri.scheme != scheme {
                return Err(at(
                    &key,
                    format!("not for a {}:// store", uri.scheme.as_str()),
                ));
            }
            if !secrets.contains_key(&name) {
                return Err(at(&key, format!("no secret named '{name}' in secrets:")));
            }
            names.insert(field, name);
        }
        if uri.scheme == Scheme::S3
            && names.contains_key("access_key_id") != names.contains_key("secret_access_key")
        {
            return Err(at(
                "access_key_id_secret",
                "give both access_key_id_secret and secret_access_key_secret, or neither".into(),
            ));
        }
        if uri.scheme == Scheme::Azure && r.account.is_none() {
            return Err(at(
                "account",
                "an Azure store needs its storage account".into(),
            ));
        }
        let reach = match r.reachable_from {
            None => skyward_checkpoint::Reach::All,
            Some(p) if p.is_empty() || p.len() > 64 => {
                return Err(at("reachable_from", "1 to 64 providers".into()))
            }
            Some(p) => skyward_checkpoint::Reach::Only(
                p.into_iter().map(|x| x.to_ascii_lowercase()).collect(),
            ),
        };
        out.push(ObjectStoreConfig {
            uri,
            endpoint: r.endpoint,
            region: r.region,
            account: r.account,
            secrets: names,
            reach,
        });
    }
    Ok(out)
}

fn field_index(field: &str) -> usize {
    field
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// `skyward up`: local sites named after real cloud regions, with small
/// capacities and catalog prices, so one machine shows multi-cloud
/// placement (the EU site is the one EU-resident work can use; spot is
/// the cheapest).
pub const UP_CONFIG: &str = "\
sites:
  - region: aws:us-east-1
    accelerator: H100
    accelerators: 8
  - region: azure:eastus
    accelerator: H100
    accelerators: 8
  - region: gcp:europe-west4
    accelerator: H100
    accelerators: 8
    price_basis: spot
";

pub fn up_config(
    catalog: &Catalog,
    data_dir: &Path,
    listen: &str,
) -> Result<ServerConfig, SpecError> {
    let mut cfg = parse(UP_CONFIG, "<built-in up config>", catalog)?;
    cfg.data_dir = data_dir.to_path_buf();
    cfg.listen = listen.to_string();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn up_config_prices_come_from_the_catalog() {
        let cat = Catalog::builtin().unwrap();
        let cfg = up_config(&cat, Path::new("/tmp/x"), DEFAULT_LISTEN).unwrap();
        assert_eq!(cfg.sites.len(), 3);
        // p5.48xlarge: $55.04 / 8.
        assert_eq!(
            cfg.sites[0].spec.price_usd_per_accelerator_hour,
            Usd::from_micros(6_880_000)
        );
        assert_eq!(cfg.sites[2].price_basis, PriceBasis::Spot);
    }

    #[test]
    fn errors_name_the_field() {
        let cat = Catalog::builtin().unwrap();
        let e = parse(
            "sites:\n  - region: aws:us-east-1\n    accelerator: H100\n    accelerators: 0\n",
            "s.yaml",
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.field, "sites[0].accelerators");
        assert_eq!(e.line, Some(4));
        let e = parse(
            "sites:\n  - region: mars:x\n    accelerator: H100\n    accelerators: 1\n",
            "s.yaml",
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.field, "sites[0].region");
        let e = parse("listen: nowhere\n", "s.yaml", &cat).unwrap_err();
        assert_eq!(e.field, "listen");
        let e = parse("sites: []\nbogus: 1\n", "s.yaml", &cat).unwrap_err();
        assert!(e.message.contains("bogus"));
        let e = parse(
            "sites:\n  - name: \"us\\u202eeast\"\n    region: aws:us-east-1\n    accelerator: H100\n    accelerators: 1\n",
            "s.yaml",
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.field, "sites[0].name");
        let e = parse("secrets:\n  hf: {}\n", "s.yaml", &cat).unwrap_err();
        assert_eq!(e.field, "secrets.hf");
        // Container runtimes: local sites only, a command, not an option.
        let site =
            "sites:\n  - region: aws:us-east-1\n    accelerator: H100\n    accelerators: 1\n";
        for (extra, field) in [
            (
                "    container_runtime: --privileged\n",
                "sites[0].container_runtime",
            ),
            (
                "    container_runtime: 'podman; rm'\n",
                "sites[0].container_runtime",
            ),
            (
                "    container_args: [--gpus, all]\n",
                "sites[0].container_args",
            ),
            (
                "    executor: slurm\n    container_runtime: podman\n",
                "sites[0].container_runtime",
            ),
        ] {
            let e = parse(&format!("{site}{extra}"), "s.yaml", &cat).unwrap_err();
            assert_eq!(e.field, field, "{extra}: {e:?}");
        }
        let ok = parse(
            &format!(
                "{site}    container_runtime: /usr/bin/podman\n    container_args: [--gpus, all]\n"
            ),
            "s.yaml",
            &cat,
        )
        .unwrap();
        assert_eq!(
            ok.sites[0].container,
            Some(skyward_executor::local::Container {
                runtime: "/usr/bin/podman".into(),
                args: vec!["--gpus".into(), "all".into()]
            })
        );
        let ok = parse(
            "secrets:\n  hf-token: {env: HF_TOKEN}\n  db: {file: /run/secrets/db}\n",
            "s.yaml",
            &cat,
        )
        .unwrap();
        assert_eq!(
            ok.secrets.get("hf-token"),
            Some(&SecretSource::Env("HF_TOKEN".into()))
        );
    }

    #[test]
    fn object_stores_are_checked_field_by_field() {
        let cat = Catalog::builtin().unwrap();
        let head = "sites: []\nsecrets:\n  k: {env: K}\n  j: {env: J}\nobject_stores:\n";
        let cfg = parse(
            &format!("{head}  - uri: s3://ckpt/a\n    endpoint: http://127.0.0.1:9000\n    access_key_id_secret: k\n    secret_access_key_secret: j\n    reachable_from: [AWS]\n  - uri: az://ckpt\n    account: acct\n    access_key_secret: k\n"),
            "s.yaml",
            &cat,
        )
        .unwrap();
        assert_eq!(cfg.object_stores.len(), 2);
        assert_eq!(
            cfg.object_stores[0].reach,
            skyward_checkpoint::Reach::Only(vec!["aws".into()])
        );
        assert_eq!(cfg.object_stores[1].reach, skyward_checkpoint::Reach::All);
        for (body, want) in [
            ("  - uri: ftp://x\n", "object_stores[0].uri"),
            ("  - uri: s3://ckpt\n    access_key_id_secret: nope\n    secret_access_key_secret: j\n", "no secret named 'nope'"),
            ("  - uri: s3://ckpt\n    access_key_id_secret: k\n", "give both"),
            ("  - uri: s3://ckpt\n    access_key_secret: k\n", "not for a s3:// store"),
            ("  - uri: az://ckpt\n", "object_stores[0].account"),
            ("  - uri: s3://ckpt\n    endpoint: ftp://x\n", "object_stores[0].endpoint"),
            ("  - uri: s3://ckpt\n  - uri: s3://ckpt/\n", "configured twice"),
            ("  - uri: s3://ckpt\n    reachable_from: []\n", "reachable_from"),
            ("  - uri: s3://ckpt\n    password: x\n", "password"),
        ] {
            let e = parse(&format!("{head}{body}"), "s.yaml", &cat).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn gateways_are_checked_field_by_field() {
        let cat = Catalog::builtin().unwrap();
        let head = "sites: []\ngateways:\n";
        let cfg = parse(
            &format!("{head}  - name: main\n    metrics_url: http://127.0.0.1:8480/metrics\n"),
            "s.yaml",
            &cat,
        )
        .unwrap();
        assert_eq!(
            cfg.gateways,
            vec![GatewayConfig {
                name: "main".into(),
                metrics_url: "http://127.0.0.1:8480/metrics".into(),
                sample_every_ms: 10_000,
            }]
        );
        let cfg = parse(
            &format!(
                "{head}  - name: main\n    metrics_url: http://h/metrics\n    sample_every: 2s\n"
            ),
            "s.yaml",
            &cat,
        )
        .unwrap();
        assert_eq!(cfg.gateways[0].sample_every_ms, 2_000);
        for (body, want) in [
            ("  - name: a\n    metrics_url: http://x/m\n    sample_every: 500ms\n", "s.yaml:5: gateways[0].sample_every"),
            ("  - name: a\n    metrics_url: http://x/m\n    sample_every: 2h\n", "gateways[0].sample_every"),
            ("  - name: a\n    metrics_url: https://x/metrics\n", "s.yaml:4: gateways[0].metrics_url"),
            ("  - name: a\n    metrics_url: http://x\n", "gateways[0].metrics_url"),
            ("  - name: a\n    metrics_url: http:///metrics\n", "gateways[0].metrics_url"),
            ("  - name: ''\n    metrics_url: http://x/m\n", "gateways[0].name"),
            ("  - name: a\n    metrics_url: http://x/m\n  - name: a\n    metrics_url: http://y/m\n", "configured twice"),
            ("  - name: a\n    metrics_url: http://x/m\n    token: t\n", "token"),
        ] {
            let e = parse(&format!("{head}{body}"), "s.yaml", &cat).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let many: String = (0..=GATEWAYS_MAX)
            .map(|i| format!("  - name: g{i}\n    metrics_url: http://x/m\n"))
            .collect();
        let e = parse(&format!("{head}{many}"), "s.yaml", &cat)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 16 gateways"), "{e}");
    }

    #[test]
    fn teams_weights_and_quotas() {
        let cat = Catalog::builtin().unwrap();
        let cfg = parse(
            "sites: []\nteams:\n  ml: {weight: 2, max_accelerators: 64}\n  infra: {}\n",
            "s.yaml",
            &cat,
        )
        .unwrap();
        let ml = &cfg.core.teams["ml"];
        assert_eq!((ml.weight, ml.max_accelerators), (2.0, Some(64)));
        assert_eq!(cfg.core.teams["infra"].weight, 1.0);
        let e = parse("teams:\n  ml: {weight: 0}\n", "s.yaml", &cat).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("teams.ml.weight", Some(2)));
        let e = parse("teams:\n  \"a b\": {}\n", "s.yaml", &cat).unwrap_err();
        assert_eq!(e.field, "teams.a b");
        let e = parse("teams:\n  ml: {share: 3}\n", "s.yaml", &cat).unwrap_err();
        assert!(e.message.contains("share"), "{e}");
    }
}
