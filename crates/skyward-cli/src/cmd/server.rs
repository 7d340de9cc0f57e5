//! `skyward up`, `skyward server`, `skyward token create`: the server side.
#![allow(clippy::disallowed_methods)]

use crate::error::CliError;
use crate::Output;
use clap::{Args, Subcommand};
use skyward_server::config::{self, ServerConfig};
use skyward_server::db::{Db, Target};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct ServeOpts {
    /// Address to listen on (default 127.0.0.1:8470, or the config's).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the database (SQLite) and the workloads' directories live
    /// (default: $SKYWARD_DATA_DIR, else $XDG_DATA_HOME/skyward/server,
    /// else ~/.local/share/skyward/server).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the embedded SQLite file:
    /// postgres://user:password@host/db. A password given here is visible
    /// to every user of the machine in /proc/<pid>/cmdline: prefer
    /// $SKYWARD_DATABASE_URL or --database-url-file.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// A file holding the PostgreSQL URL (first line; keep it mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<PathBuf>,
    /// Where runs' directories go, outside the state directory (default:
    /// `<data dir>-work` beside it; for a root server whose data directory
    /// the run user cannot reach, /var/lib/skyward/<name>-work).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub opts: ServeOpts,
    /// A running gateway's metrics page (`skyward gateway run`'s
    /// http://HOST:PORT/metrics) for the dashboard's gateway page.
    #[arg(long, value_name = "URL")]
    pub gateway_metrics: Option<String>,
}

#[derive(Args)]
pub struct ServerArgs {
    /// Server configuration (YAML): listen, data_dir, database_url, sites, scheduler.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub opts: ServeOpts,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token (printed once; only its hash is stored).
    Create(TokenCreateArgs),
    /// List tokens: id, user, team, scope, expiry, revocation (admin).
    List(crate::cmd::client::TokenListArgs),
    /// Revoke a token by id: it stops working at once (admin).
    Revoke(crate::cmd::client::TokenRevokeArgs),
}

#[derive(Args)]
pub struct TokenCreateArgs {
    /// A name to recognise the token by.
    #[arg(long)]
    pub name: String,
    /// read, submit (includes read), admin (includes both), or agent (a
    /// remote agent of one site, with --site; nothing else).
    #[arg(long, default_value = "submit")]
    pub scope: String,
    /// For --scope agent: the site (a configured site with executor: agent).
    #[arg(long)]
    pub site: Option<String>,
    /// The server's configuration, to check --site against (default: the
    /// site is taken as given).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The team the token's user belongs to: read and submit tokens see
    /// and cancel their own team's workloads only.
    #[arg(long, default_value = "default")]
    pub team: String,
    /// Lifetime (`30d`, `12h`); without it the token lasts until revoked.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (prefer $SKYWARD_DATABASE_URL or --database-url-file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    #[arg(long, value_name = "FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn default_data_dir() -> Result<PathBuf, CliError> {
    if let Some(p) = std::env::var_os("SKYWARD_DATA_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("skyward/server"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/skyward/server")),
        None => Err(CliError::Input(
            "no data directory: pass --data-dir or set SKYWARD_DATA_DIR".into(),
        )),
    }
}

/// The database URL: `--database-url`, else `--database-url-file`'s
/// first line, else $SKYWARD_DATABASE_URL.
fn database_url(
    explicit: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, CliError> {
    if let Some(u) = explicit {
        if skyward_server::db::redact_url(u) != *u {
            eprintln!("skyward: warning: the database password given with --database-url is visible to every user of this machine (/proc/<pid>/cmdline); use $SKYWARD_DATABASE_URL or --database-url-file");
        }
        return Ok(Some(u.clone()));
    }
    if let Some(p) = file {
        let text = skyward_server::read_small(p, skyward_server::SECRET_BYTES_MAX)
            .map_err(|e| CliError::Io(format!("--database-url-file {}: {e}", p.display())))?;
        let url = text.lines().next().unwrap_or("").trim().to_string();
        if url.is_empty() {
            return Err(CliError::Input(format!(
                "--database-url-file {}: the file is empty",
                p.display()
            )));
        }
        return Ok(Some(url));
    }
    Ok(std::env::var("SKYWARD_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty()))
}

fn apply_opts(
    mut cfg: ServerConfig,
    o: &ServeOpts,
    data_dir_given_by_config: bool,
) -> Result<ServerConfig, CliError> {
    if let Some(l) = &o.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            return Err(CliError::Input(format!(
                "--listen: '{l}' is not an address:port (e.g. 127.0.0.1:8470)"
            )));
        }
        cfg.listen = l.clone();
    }
    match &o.data_dir {
        Some(d) => cfg.data_dir = d.clone(),
        None if !data_dir_given_by_config => cfg.data_dir = default_data_dir()?,
        None => {}
    }
    if let Some(u) = database_url(&o.database_url, &o.database_url_file)? {
        cfg.database_url = Some(u);
    }
    if let Some(w) = &o.work_dir {
        cfg.work_dir = Some(w.clone());
    }
    Ok(cfg)
}

/// `skyward up`: the built-in sites, each served by an agent that runs in
/// this process and speaks the same protocol as a remote one
/// (`POST /v1/agent/sync` over loopback, with its own agent token).
pub fn run_up(a: &UpArgs) -> Result<(), CliError> {
    let catalog = skyward_catalog::Catalog::builtin()?;
    let cfg = config::up_config(&catalog, &PathBuf::new(), config::DEFAULT_LISTEN)?;
    let mut cfg = apply_opts(cfg, &a.opts, false)?;
    for s in &mut cfg.sites {
        s.executor = config::SiteExecutor::Agent;
    }
    if let Some(u) = &a.gateway_metrics {
        cfg.gateways = vec![config::GatewayConfig::new("gateway", u)
            .map_err(|(_, m)| CliError::Input(format!("--gateway-metrics: {m}")))?];
    }
    serve_with(cfg, catalog, true)
}

/// The name of the tokens `skyward up` makes for its agents (the ones of
/// an earlier start are revoked).
const UP_AGENT_TOKEN: &str = "skyward-up-agent-";

/// Starts an agent per site in this process: a token each (made in the
/// store, those of the last start revoked), a thread each running the
/// agent loop against this server. They share the server's work area, so
/// runs started before (by agents or by an older `up`) are adopted.
async fn start_agents(
    cfg: &ServerConfig,
    target: &Target,
    addr: std::net::SocketAddr,
) -> Result<(), CliError> {
    let run_as = skyward_executor::isolation::resolve_run_as(cfg.run_as.as_deref())
        .map_err(|e| CliError::Input(e.to_string()))?;
    let work = skyward_server::work_dir(cfg, run_as.as_ref()).map_err(server_err)?;
    let inproc = crate::cmd::agent::InProcess {
        cgroup_root: skyward_executor::isolation::cgroup_root(
            &skyward_server::auth::hash(&work.display().to_string())[..16],
        ),
        legacy_root: Some(cfg.data_dir.join("work")).filter(|d| d.is_dir()),
    };
    let db = Db::open(target)
        .await
        .map_err(|e| CliError::Io(e.to_string()))?;
    let now = skyward_server::runtime::SystemClock.now_ms_i64();
    for t in db
        .token_list(100_000)
        .await
        .map_err(|e| CliError::Io(e.to_string()))?
    {
        if t.name.starts_with(UP_AGENT_TOKEN) && t.revoked_at_ms.is_none() {
            db.token_revoke(t.id, now)
                .await
                .map_err(|e| CliError::Io(e.to_string()))?;
        }
    }
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    for s in &cfg.sites {
        let token = skyward_server::auth::generate()
            .map_err(|e| CliError::Io(format!("/dev/urandom: {e}")))?;
        db.token_create(
            &skyward_server::db::NewToken {
                name: &format!("{UP_AGENT_TOKEN}{}", s.spec.name),
                sha256: &skyward_server::auth::hash(&token),
                scope: &format!("agent:{}", s.spec.name),
                team: "default",
                expires_at_ms: None,
            },
            now,
        )
        .await
        .map_err(|e| CliError::Io(e.to_string()))?;
        let args = crate::cmd::agent::AgentArgs {
            server: Some(format!("http://{host}")),
            token: Some(token),
            site: s.spec.name.clone(),
            region: Some(s.spec.region.to_string()),
            accelerator: s.spec.accelerator.clone(),
            accelerators: s.spec.accelerators,
            price_basis: Some(s.price_basis.as_str().to_string()),
            executor: crate::cmd::agent::ExecutorKind::Local,
            slurm_conf: None,
            slurm_rest: None,
            slurm_rest_version: "v0.0.38".into(),
            container_runtime: s.container.as_ref().map(|c| c.runtime.clone()),
            container_args: s
                .container
                .as_ref()
                .map(|c| c.args.clone())
                .unwrap_or_default(),
            work_dir: Some(work.clone()),
            run_as: cfg.run_as.clone(),
        };
        let inproc = inproc.clone();
        std::thread::Builder::new()
            .name(format!("agent-{}", s.spec.name))
            .spawn(move || {
                if let Err(e) = crate::cmd::agent::run_with(&args, &inproc) {
                    eprintln!("skyward: the agent of site {} stopped: {e}", args.site);
                }
            })
            .map_err(|e| CliError::Io(format!("agent thread: {e}")))?;
    }
    Ok(())
}

pub fn run_server(a: &ServerArgs) -> Result<(), CliError> {
    let catalog = skyward_catalog::Catalog::builtin()?;
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| CliError::Io(format!("{}: {e}", a.config.display())))?;
    let cfg = config::parse(&text, &a.config.display().to_string(), &catalog)?;
    let given = text.lines().any(|l| l.starts_with("data_dir:"));
    let mut cfg = apply_opts(cfg, &a.opts, given)?;
    if given && cfg.data_dir.is_relative() {
        // Relative to the config file, like every path in it.
        if let Some(parent) = a.config.parent() {
            cfg.data_dir = parent.join(&cfg.data_dir);
        }
    }
    if a.opts.work_dir.is_none() {
        if let (Some(w), Some(parent)) = (cfg.work_dir.clone(), a.config.parent()) {
            if w.is_relative() {
                cfg.work_dir = Some(parent.join(w));
            }
        }
    }
    serve(cfg, catalog)
}

fn server_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the runtime: {e}")))
}

fn serve(cfg: ServerConfig, catalog: skyward_catalog::Catalog) -> Result<(), CliError> {
    serve_with(cfg, catalog, false)
}

fn serve_with(
    cfg: ServerConfig,
    catalog: skyward_catalog::Catalog,
    in_process_agents: bool,
) -> Result<(), CliError> {
    let rt = server_runtime()?;
    rt.block_on(async move {
        let target = skyward_server::db_target(&cfg);
        let sites = cfg.sites.clone();
        let data_dir = cfg.data_dir.clone();
        let agent_cfg = in_process_agents.then(|| cfg.clone());
        let running = skyward_server::start(cfg, Arc::new(catalog)).await.map_err(server_err)?;
        if let Some(c) = &agent_cfg {
            start_agents(c, &target, running.addr).await?;
        }
        eprintln!("skyward: listening on http://{} (API /v1, docs /v1/openapi.json, /metrics, /healthz)", running.addr);
        eprintln!("skyward: database {}; state in {} (mode 0700)", target.redacted(), data_dir.display());
        for s in &sites {
            eprintln!(
                "skyward: site {:<18} {:>3} × {:<10} {:>9} /accelerator-hour ({}, {})",
                s.spec.name,
                s.spec.accelerators,
                s.spec.accelerator,
                format!("${:.2}", s.spec.price_usd_per_accelerator_hour.as_f64()),
                s.price_basis.as_str(),
                s.price_source
            );
        }
        if let Some(p) = &running.admin_token_file {
            eprintln!("skyward: created an admin token in {} (mode 0600, in the server's 0700 state directory, out of workloads' reach when the server runs as root; the CLI on this machine uses it; `skyward token create` makes more)", p.display());
        }
        wait_for_signal().await;
        eprintln!("skyward: shutting down");
        running.stop().await.map_err(server_err)
    })
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub fn server_err(e: skyward_server::ServerError) -> CliError {
    match e {
        skyward_server::ServerError::Listen { .. } => CliError::Input(e.to_string()),
        _ => CliError::Io(e.to_string()),
    }
}

pub fn run_token(c: &TokenCommand) -> Result<(), CliError> {
    let a = match c {
        TokenCommand::Create(a) => a,
        TokenCommand::List(l) => return crate::cmd::client::token_list(l),
        TokenCommand::Revoke(r) => return crate::cmd::client::token_revoke(r),
    };
    let scope = skyward_server::auth::Scope::parse(&a.scope).ok_or_else(|| {
        CliError::Input(format!(
            "--scope: '{}' is not read, submit, admin or agent",
            a.scope
        ))
    })?;
    if a.name.trim().is_empty() || a.name.len() > 128 {
        return Err(CliError::Input("--name: 1 to 128 characters".into()));
    }
    if let Some(problem) = skyward_spec::text::name_problem(&a.name) {
        return Err(CliError::Input(format!("--name: {problem}")));
    }
    if !skyward_server::http::valid_team(&a.team) {
        return Err(CliError::Input(
            "--team: 1 to 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    let agent_sites: Option<Vec<String>> = match &a.config {
        Some(p) => Some(
            {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?;
                let catalog =
                    skyward_catalog::Catalog::builtin().map_err(|e| CliError::Io(e.to_string()))?;
                config::parse(&text, &p.display().to_string(), &catalog)?
            }
            .sites
            .into_iter()
            .filter(|s| s.executor == skyward_server::config::SiteExecutor::Agent)
            .map(|s| s.spec.name)
            .collect(),
        ),
        None => None,
    };
    let stored_scope = skyward_server::auth::stored_scope(scope, a.site.as_deref(), |s| {
        agent_sites
            .as_ref()
            .is_none_or(|list| list.iter().any(|x| x == s))
            && skyward_spec::text::name_problem(s).is_none()
    })
    .map_err(|m| CliError::Input(format!("--site: {m}")))?;
    let expires_ms = a
        .expires
        .as_deref()
        .map(skyward_spec::job::parse_duration_ms)
        .transpose()
        .map_err(|m| CliError::Input(format!("--expires: {m}")))?;
    let target = match database_url(&a.database_url, &a.database_url_file)? {
        Some(u) => Target::parse(&u),
        None => skyward_server::db::default_sqlite(
            &a.data_dir.clone().map_or_else(default_data_dir, Ok)?,
        ),
    };
    let rt = crate::cmd::ledger::runtime()?;
    let token =
        skyward_server::auth::generate().map_err(|e| CliError::Io(format!("/dev/urandom: {e}")))?;
    let id = rt.block_on(async {
        let db = Db::open(&target)
            .await
            .map_err(|e| CliError::Io(e.to_string()))?;
        let now = skyward_server::runtime::SystemClock.now_ms_i64();
        let id = db
            .token_create(
                &skyward_server::db::NewToken {
                    name: a.name.trim(),
                    sha256: &skyward_server::auth::hash(&token),
                    scope: &stored_scope,
                    team: &a.team,
                    expires_at_ms: expires_ms.map(|e| now + e as i64),
                },
                now,
            )
            .await
            .map_err(|e| CliError::Io(e.to_string()))?;
        db.close().await;
        Ok::<i64, CliError>(id)
    })?;
    match a.output {
        Output::Json => outln!(
            "{}",
            crate::error::json(
                &serde_json::json!({"id": id, "name": a.name.trim(), "team": a.team, "scope": stored_scope, "expires_in_ms": expires_ms, "token": token})
            )?
        ),
        Output::Table => {
            outln!("{token}");
            eprintln!("token #{id} '{}' (team {}) with scope {}{}: shown once, only its hash is stored; use it as SKYWARD_TOKEN or --token", a.name.trim(), a.team, stored_scope, a.expires.as_deref().map(|e| format!(", expires in {e}")).unwrap_or_default());
        }
    }
    Ok(())
}

/// The token file `skyward up` writes in the default data directory.
pub fn default_token_file() -> Option<PathBuf> {
    default_data_dir().ok().map(|d| d.join("admin.token"))
}

pub fn read_token_file(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
