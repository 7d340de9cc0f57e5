//! `skyward catalog fetch` (a provider's price source into a catalog
//! file, with its provenance next to it) and `skyward catalog diff`.

use crate::error::{json, CliError};
use crate::table::Table;
use crate::{load_catalog, Common, Output};
use clap::{Args, ValueEnum};
use skyward_app::catalog_fetch::{self, Http, Reply};
use skyward_catalog::{azure, format};
use skyward_model::{Offering, Usd};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FetchProvider {
    /// The Azure Retail Prices API (no credentials): on-demand and spot.
    Azure,
    /// The AWS Price List bulk API (no credentials): the EC2 region
    /// index, then each region's offer file; on-demand only (the bulk
    /// files have no spot prices).
    Aws,
    /// The GCP Cloud Billing Catalog API (an API key, from
    /// `SKYWARD_GCP_API_KEY` or `--api-key-file`): Compute Engine's GPU,
    /// core, memory and TPU SKUs joined into machine prices; on-demand and
    /// spot.
    Gcp,
}

/// Where the GCP API key is read from when `--api-key-file` is not given.
pub const GCP_KEY_ENV: &str = "SKYWARD_GCP_API_KEY";

#[derive(Args)]
pub struct FetchArgs {
    #[arg(long, value_enum)]
    pub provider: FetchProvider,
    /// Only these regions (`eastus,westeurope`); all by default.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Write the catalog here; its provenance goes to FILE.provenance.json.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The API's address (default: the provider's own).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Only the fetched offerings (by default they replace the base
    /// catalog's offerings of that provider, in the regions fetched).
    #[arg(long)]
    pub only: bool,
    /// GCP: read the API key from this file (default: the
    /// SKYWARD_GCP_API_KEY environment variable). Never shown in output.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// The GCP API key: from `--api-key-file`, else the environment.
fn gcp_key(a: &FetchArgs) -> Result<String, CliError> {
    if let Some(path) = &a.api_key_file {
        // The same bounded read as the server's other secret files.
        let text = skyward_server::read_small(path, skyward_server::SECRET_BYTES_MAX)
            .map_err(|e| CliError::Io(format!("--api-key-file {}: {e}", path.display())))?;
        return Ok(text.lines().next().unwrap_or("").trim().to_string());
    }
    match std::env::var(GCP_KEY_ENV) {
        Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_string()),
        _ => Err(CliError::Input(format!(
            "the GCP Cloud Billing Catalog API needs an API key: set {GCP_KEY_ENV} or give --api-key-file FILE (nothing written)"
        ))),
    }
}

#[derive(Args)]
pub struct DiffArgs {
    pub old: PathBuf,
    pub new: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// The real HTTP: reqwest over rustls, bodies bounded as each call asks,
/// 10 minutes per request (a region's EC2 offer file is large).
struct Web {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http for Web {
    fn get(&mut self, url: &str, max_bytes: usize) -> Result<Reply, String> {
        let client = self.client.clone();
        self.rt.block_on(async move {
            let mut r = client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("cannot fetch: {e}"))?;
            let status = r.status().as_u16();
            let retry_after_s = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            // Sized once from the announced length (a region's offer file
            // is hundreds of MB: growing by doubling would hold up to
            // twice that for a moment).
            let mut body =
                Vec::with_capacity((r.content_length().unwrap_or(0) as usize).min(max_bytes));
            while let Some(chunk) = r.chunk().await.map_err(|e| format!("reading: {e}"))? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(format!("larger than {} MiB", max_bytes >> 20));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply {
                status,
                retry_after_s,
                body,
            })
        })
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Now, for the provenance (the clock is read here, at the edge).
#[allow(clippy::disallowed_methods)]
fn now_rfc3339() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    skyward_ledger::time::Timestamp(s).to_string()
}

pub fn fetch(a: &FetchArgs) -> Result<(), CliError> {
    let base = load_catalog(&a.common)?;
    if a.api_key_file.is_some() && a.provider != FetchProvider::Gcp {
        return Err(CliError::Input(
            "--api-key-file is for --provider gcp (Azure's and AWS's price lists need no key)"
                .into(),
        ));
    }
    let gcp_api_key = match a.provider {
        FetchProvider::Gcp => Some(gcp_key(a)?),
        _ => None,
    };
    let regions =
        catalog_fetch::check_regions(&a.regions).map_err(|e| CliError::Input(e.to_string()))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .user_agent(concat!("skyward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let mut web = Web { rt, client };
    let fetched_at = now_rfc3339();
    let show = a.common.output == Output::Table;
    let mut progress = |pages: usize, items: usize| {
        if show {
            eprint!("\r  {pages} page(s), {items} price(s) read");
        }
    };
    let (fetched, provenance) = match a.provider {
        FetchProvider::Azure => {
            let endpoint = a.endpoint.as_deref().unwrap_or(azure::ENDPOINT);
            let known = azure::known_skus(&base.offerings);
            catalog_fetch::azure(
                &mut web,
                endpoint,
                &regions,
                &known,
                &fetched_at,
                &mut progress,
            )
        }
        FetchProvider::Aws => {
            let endpoint = a
                .endpoint
                .as_deref()
                .unwrap_or(skyward_catalog::aws::ENDPOINT);
            let known = skyward_catalog::aws::known_types(&base.offerings);
            catalog_fetch::aws(
                &mut web,
                endpoint,
                &regions,
                &known,
                &fetched_at,
                &mut progress,
            )
        }
        FetchProvider::Gcp => {
            let endpoint = a
                .endpoint
                .as_deref()
                .unwrap_or(skyward_catalog::gcp_billing::ENDPOINT);
            let known = skyward_catalog::gcp_billing::known_machines(&base.offerings);
            catalog_fetch::gcp(
                &mut web,
                endpoint,
                gcp_api_key.as_deref().unwrap_or(""),
                &regions,
                &known,
                &fetched_at,
                &mut progress,
            )
        }
    }
    .map_err(|e| {
        if show {
            eprintln!();
        }
        CliError::Io(format!("{e} (nothing written)"))
    })?;
    if show {
        eprintln!();
    }
    if fetched.is_empty() {
        return Err(CliError::Io(format!(
            "no offering in what was fetched ({} prices read; nothing written)",
            provenance.items_read
        )));
    }
    let mut offerings = catalog_fetch::merge(
        base.offerings,
        fetched,
        &provenance.provider,
        &regions,
        a.only,
    );
    // The provenance first: a catalog is never there without it.
    let prov_path = PathBuf::from(format!("{}.provenance.json", a.out.display()));
    let text = json(&provenance)?;
    crate::cmd::write_atomically(&prov_path, |w| {
        writeln!(w, "{text}")?;
        Ok(text.len() as u64 + 1)
    })?;
    crate::cmd::catalog::write_catalog(&a.out, &mut offerings)?;
    match a.common.output {
        Output::Json => outln!("{}", text),
        Output::Table => {
            outln!(
                "{}: {} offerings from {} prices on {} page(s) ({} throttled retries); {} catalog offerings written to {} (provenance: {})",
                provenance.source_url,
                provenance.offerings_kept,
                provenance.items_read,
                provenance.pages,
                provenance.throttled_retries,
                offerings.len(),
                a.out.display(),
                prov_path.display()
            );
            let mut t = Table::new(&["prices left out>", "why"]);
            for (why, n) in &provenance.items_dropped {
                t.row(vec![n.to_string(), why.clone()]);
            }
            if !t.is_empty() {
                out!("{}", t.render());
            }
        }
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<Vec<Offering>, CliError> {
    let shown = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    format::read_offerings(std::io::BufReader::new(f), &shown)
        .map_err(|e| CliError::Input(e.to_string()))
}

pub fn diff(a: &DiffArgs) -> Result<(), CliError> {
    let (old, new) = (read(&a.old)?, read(&a.new)?);
    let d = skyward_catalog::diff::diff(&old, &new);
    match a.common.output {
        Output::Json => outln!("{}", json(&d)?),
        Output::Table => {
            let p = |u: Option<Usd>| {
                u.map(|x| format!("{:.4}", x.as_f64()))
                    .unwrap_or("-".into())
            };
            outln!(
                "old: {} (prices as of {})\nnew: {} (prices as of {})",
                a.old.display(),
                skyward_catalog::price_dates(&old),
                a.new.display(),
                skyward_catalog::price_dates(&new)
            );
            outln!(
                "{} unchanged, {} price change(s), {} added, {} removed",
                d.unchanged,
                d.changed.len(),
                d.added.len(),
                d.removed.len()
            );
            if !d.changed.is_empty() {
                let mut t = Table::new(&[
                    "provider",
                    "region",
                    "sku",
                    "accelerator",
                    "pricing",
                    "old $/h>",
                    "new $/h>",
                    "change>",
                ]);
                for c in &d.changed {
                    t.row(vec![
                        c.provider.clone(),
                        c.region.clone(),
                        c.sku.clone(),
                        c.accelerator.clone(),
                        c.pricing.to_string(),
                        p(c.old_usd_per_hour),
                        p(c.new_usd_per_hour),
                        c.change_pct
                            .map(|x| format!("{x:+.1}%"))
                            .unwrap_or("-".into()),
                    ]);
                }
                out!("{}", t.render());
            }
            for (title, rows) in [("added", &d.added), ("removed", &d.removed)] {
                if rows.is_empty() {
                    continue;
                }
                let mut t = Table::new(&["", "provider", "region", "sku", "accelerators"]);
                for r in rows.iter() {
                    t.row(vec![
                        title.to_string(),
                        r.provider.clone(),
                        r.region.clone(),
                        r.sku.clone(),
                        format!("{}:{}", r.accelerator, r.accelerator_count),
                    ]);
                }
                out!("{}", t.render());
            }
        }
    }
    Ok(())
}
