//! `skyward gateway run | usage | mock`: the inference gateway's edge.
#![allow(clippy::disallowed_methods)]

use crate::error::{json, CliError};
use crate::table::Table;
use crate::Output;
use clap::{Args, Subcommand, ValueEnum};
use skyward_gateway::mock::{Mock, Mode};
use skyward_gateway::usage::UsageRecord;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Serve the OpenAI-compatible endpoint from a configuration file
    /// (reloaded when it changes).
    Run(RunArgs),
    /// Check a configuration file and print what it routes.
    Check(CheckArgs),
    /// Usage from the gateway's usage log (JSON lines): per tenant and
    /// deployment, or as FOCUS rows for `skyward ledger import`.
    Usage(UsageArgs),
    /// A mock OpenAI upstream (tests, benchmarks, trying the gateway).
    Mock(MockArgs),
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Overrides the config's `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Worker threads (default 2).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Args)]
pub struct CheckArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    Table,
    Json,
    Focus,
}

#[derive(Args)]
pub struct UsageArgs {
    /// The usage log (`usage_log:` in the config).
    pub log: PathBuf,
    #[arg(long, value_enum, default_value_t = UsageFormat::Table)]
    pub format: UsageFormat,
}

#[derive(Args)]
pub struct MockArgs {
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: String,
    /// Returned in `x-mock-name` and `system_fingerprint`.
    #[arg(long, default_value = "mock")]
    pub name: String,
    /// Requests must carry this key (Bearer; Azure's `api-key`;
    /// Anthropic's `x-api-key`), else the provider's 401; for Bedrock's
    /// paths it is the AWS secret the SigV4 signature is checked with.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Delay before answering, in ms.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Chunks per streamed answer (and tokens per answer).
    #[arg(long, default_value_t = 8)]
    pub chunks: u32,
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Serve Google's OAuth token endpoint (`POST /token`) for the service
    /// account with this RSA public key (PKCS#1 DER, as `openssl rsa
    /// -RSAPublicKey_out -outform DER` writes it); Vertex AI's paths then
    /// need one of its tokens.
    #[arg(long, value_name = "FILE")]
    pub google_public_key: Option<std::path::PathBuf>,
    /// How long the tokens it issues live, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_s: u64,
    /// Serve over TLS (HTTP/2 or HTTP/1.1 by ALPN) with this certificate
    /// chain (PEM) and `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the runtime: {e}")))
}

fn gw_err(e: skyward_gateway::GatewayError) -> CliError {
    match e {
        skyward_gateway::GatewayError::Io { .. } => CliError::Io(e.to_string()),
        _ => CliError::Input(e.to_string()),
    }
}

pub fn run(c: &GatewayCommand) -> Result<(), CliError> {
    match c {
        GatewayCommand::Run(a) => run_gateway(a),
        GatewayCommand::Check(a) => check(a),
        GatewayCommand::Usage(a) => usage(a),
        GatewayCommand::Mock(a) => mock(a),
    }
}

fn run_gateway(a: &RunArgs) -> Result<(), CliError> {
    let cfg = skyward_gateway::load(&a.config).map_err(gw_err)?;
    let rt = runtime(a.threads)?;
    rt.block_on(async {
        let models = cfg.models.len();
        let deployments: usize = cfg.models.iter().map(|m| m.deployments.len()).sum();
        let keys = cfg.keys.len();
        let scheme = if cfg.tls.is_some() { "https (HTTP/2 or HTTP/1.1)" } else { "http (HTTP/1.1 or h2c)" };
        let running = skyward_gateway::start(a.config.clone(), cfg, a.listen.clone()).await.map_err(gw_err)?;
        eprintln!(
            "skyward gateway: listening on {} {scheme} (POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models, /metrics, /healthz); {models} models, {deployments} deployments, {}",
            running.addr,
            if keys == 0 { "no keys: open to anyone who can reach it".to_string() } else { format!("{keys} keys") }
        );
        eprintln!("skyward gateway: watching {} for changes", a.config.display());
        crate::cmd::server::wait_for_signal().await;
        eprintln!("skyward gateway: shutting down");
        running.stop();
        Ok(())
    })
}

fn check(a: &CheckArgs) -> Result<(), CliError> {
    let cfg = skyward_gateway::load(&a.config).map_err(gw_err)?;
    // The listener's certificate and the upstreams' extra roots too.
    skyward_gateway::tls_files(&a.config, &cfg).map_err(gw_err)?;
    match a.output {
        Output::Json => {
            let v: Vec<_> = cfg
                .models
                .iter()
                .map(|m| serde_json::json!({
                    "model": m.name,
                    "policy": m.policy.as_str().to_string(),
                    "deployments": m.deployments.iter().map(|d| serde_json::json!({"name": d.name, "provider": d.provider, "region": d.region, "url": d.url, "upstream_model": d.upstream_model, "capacity": d.capacity.as_str().to_string(), "tags": d.tags, "api": d.api.as_str(), "h2c": d.h2c, "has_api_key": d.api_key.is_some(), "signs_with_aws": d.aws.as_ref().map(|(c, region)| serde_json::json!({"access_key_id": c.access_key_id, "region": region, "session_token": c.session_token.is_some()}))})).collect::<Vec<_>>(),
                }))
                .collect();
            outln!("{}", json(&v)?);
        }
        Output::Table => {
            let mut t = Table::new(&[
                "model",
                "policy",
                "deployment",
                "provider",
                "region",
                "api",
                "capacity",
                "$in/M>",
                "$out/M>",
                "tags",
                "key",
            ]);
            for m in &cfg.models {
                for d in &m.deployments {
                    t.row(vec![
                        m.name.clone(),
                        m.policy.as_str().to_string(),
                        d.name.clone(),
                        d.provider.clone(),
                        d.region.clone(),
                        d.api.as_str().to_string(),
                        d.capacity.as_str().to_string(),
                        format!("{:.2}", d.input_usd_per_mtok),
                        format!("{:.2}", d.output_usd_per_mtok),
                        d.tags.join(","),
                        match (&d.api_key, &d.aws) {
                            (Some(_), _) => "set".into(),
                            (None, Some(_)) => "sigv4".into(),
                            _ => "-".into(),
                        },
                    ]);
                }
            }
            out!("{}", t.render());
            outln!("{} keys; listen {}", cfg.keys.len(), cfg.listen);
        }
    }
    Ok(())
}

fn read_log(p: &PathBuf) -> Result<Vec<UsageRecord>, CliError> {
    let text =
        std::fs::read_to_string(p).map_err(|e| CliError::Io(format!("{}: {e}", p.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| CliError::Input(format!("{}:{}: {e}", p.display(), i + 1)))
        })
        .collect()
}

fn usage(a: &UsageArgs) -> Result<(), CliError> {
    let recs = read_log(&a.log)?;
    match a.format {
        UsageFormat::Focus => {
            let mut out = Vec::new();
            skyward_gateway::usage::write_focus(&mut out, &recs)
                .map_err(|e| CliError::Internal(e.to_string()))?;
            crate::write_stdout(&String::from_utf8_lossy(&out));
        }
        UsageFormat::Json => outln!("{}", json(&recs)?),
        UsageFormat::Table => {
            let mut agg: BTreeMap<(String, String), (u64, u64, u64, f64)> = BTreeMap::new();
            for r in &recs {
                let e = agg
                    .entry((r.tenant.clone(), r.deployment.clone()))
                    .or_default();
                e.0 += 1;
                e.1 += r.prompt_tokens;
                e.2 += r.completion_tokens;
                e.3 += r.cost_usd;
            }
            let mut t = Table::new(&[
                "tenant",
                "deployment",
                "requests>",
                "prompt tokens>",
                "completion tokens>",
                "cost $>",
            ]);
            for ((tenant, dep), (n, p, c, cost)) in agg {
                t.row(vec![
                    tenant,
                    dep,
                    n.to_string(),
                    p.to_string(),
                    c.to_string(),
                    format!("{cost:.6}"),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

fn mock(a: &MockArgs) -> Result<(), CliError> {
    let rt = runtime(a.threads)?;
    rt.block_on(async {
        let listener = skyward_gateway::bind(&a.listen).await.map_err(gw_err)?;
        let addr = listener.local_addr().map_err(|e| CliError::Io(e.to_string()))?;
        let mut m = Mock::new(&a.name, Mode { delay_ms: a.delay_ms, chunks: a.chunks, chunk_delay_ms: a.chunk_delay_ms, ..Mode::default() })
            .with_key(a.api_key.clone());
        if let Some(p) = &a.google_public_key {
            let der = std::fs::read(p).map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?;
            m = m.with_google(der, a.token_ttl_s.clamp(1, 86_400));
        }
        let m = Arc::new(m);
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(skyward_gateway::acceptor_from_files(c, k).map_err(CliError::Input)?),
            _ => None,
        };
        eprintln!("skyward mock-openai '{}': listening on {}://{addr} (POST /_mock/mode to inject faults)", a.name, if tls.is_some() { "https" } else { "http" });
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let serve = skyward_gateway::serve_http(
            listener,
            move |req| m.clone().handle(req),
            rx,
            16_384,
            std::time::Duration::from_secs(60),
            tls.map(|a| tokio::sync::watch::channel(a).1),
        );
        tokio::select! {
            _ = serve => {}
            _ = crate::cmd::server::wait_for_signal() => {}
        }
        Ok(())
    })
}
