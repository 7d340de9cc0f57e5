//! `skyward catalog …`

use crate::error::{json, CliError};
use crate::table::{num, Table};
use crate::{load_catalog, Common, Output};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use skyward_catalog::{format, regions, skypilot, Catalog};
use skyward_model::{Offering, Usd};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// List offerings, filtered.
    List(ListArgs),
    /// Show one instance type in every region.
    Show(ShowArgs),
    /// Validate a SkyPilot vms.csv and write a Skyward catalog with it.
    Import(ImportArgs),
    /// The accelerator table: memory, dense BF16 TFLOPS, generation, sources.
    Accelerators(CommonOnly),
    /// Regions with their geography and certifications.
    Regions(CommonOnly),
    /// Rows of the source data that the built-in catalog fixed or dropped, and why.
    Notes(CommonOnly),
    /// Read a provider's public price source into a catalog file (Azure:
    /// the Retail Prices API, no credentials).
    Fetch(crate::cmd::catalog_fetch::FetchArgs),
    /// Price changes between two catalog files: added, removed, changed.
    Diff(crate::cmd::catalog_fetch::DiffArgs),
}

#[derive(Args)]
pub struct CommonOnly {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ListArgs {
    /// Accelerator model (case-insensitive), e.g. H100.
    #[arg(long)]
    pub accelerator: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    /// Region name, or provider:region.
    #[arg(long)]
    pub region: Option<String>,
    /// Only offerings at or below this on-demand $/hour (spot with --spot).
    #[arg(long)]
    pub max_price: Option<f64>,
    /// Only offerings with a spot price; --max-price then applies to spot.
    #[arg(long)]
    pub spot: bool,
    /// Geography (us, eu, uk, …).
    #[arg(long)]
    pub geography: Option<String>,
    /// At most this many rows (0: all).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Instance type (p5.48xlarge, a3-highgpu-8g, tpu-v5p-8, …).
    pub sku: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Skypilot,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub format: ImportFormat,
    /// Provider the file prices (aws, azure, gcp, oci, lambda, or a new name).
    #[arg(long)]
    pub provider: String,
    /// Write the resulting catalog here.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Start from an empty catalog instead of the built-in one (by default the
    /// imported offerings replace the built-in ones of that provider).
    #[arg(long)]
    pub only: bool,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(c: &CatalogCommand) -> Result<(), CliError> {
    match c {
        CatalogCommand::List(a) => list(a),
        CatalogCommand::Show(a) => show(a),
        CatalogCommand::Import(a) => import(a),
        CatalogCommand::Accelerators(a) => accelerators(&a.common),
        CatalogCommand::Regions(a) => region_list(&a.common),
        CatalogCommand::Notes(a) => notes(&a.common),
        CatalogCommand::Fetch(a) => crate::cmd::catalog_fetch::fetch(a),
        CatalogCommand::Diff(a) => crate::cmd::catalog_fetch::diff(a),
    }
}

#[derive(Serialize)]
struct OfferingView<'a> {
    #[serde(flatten)]
    offering: &'a Offering,
    geography: String,
    compliance: Vec<String>,
}

fn offering_table(cat: &Catalog, items: &[&Offering]) -> String {
    let mut t = Table::new(&[
        "PROVIDER",
        "REGION",
        "SKU",
        "ACCELERATOR",
        "COUNT>",
        "VCPUS>",
        "MEM GIB>",
        "ON-DEMAND $/H>",
        "SPOT $/H>",
        "GEO",
    ]);
    for o in items {
        let info = cat.region(&o.region);
        let dash = |v: f64| if v > 0.0 { num(v) } else { "-".into() };
        t.row(vec![
            o.region.provider.clone(),
            o.region.region.clone(),
            o.sku.clone(),
            o.accelerator.clone(),
            o.accelerator_count.to_string(),
            dash(o.vcpus),
            dash(o.memory_gib),
            o.on_demand_usd_per_hour
                .map(format::fmt_usd)
                .unwrap_or_else(|| "-".into()),
            o.spot_usd_per_hour
                .map(format::fmt_usd)
                .unwrap_or_else(|| "-".into()),
            info.geography,
        ]);
    }
    t.render()
}

fn emit(cat: &Catalog, items: &[&Offering], output: Output, total: usize) -> Result<(), CliError> {
    match output {
        Output::Json => {
            let v: Vec<OfferingView> = items
                .iter()
                .map(|o| {
                    let info = cat.region(&o.region);
                    OfferingView {
                        offering: o,
                        geography: info.geography,
                        compliance: info.compliance,
                    }
                })
                .collect();
            outln!("{}", json(&v)?);
        }
        Output::Table => {
            out!("{}", offering_table(cat, items));
            if total > items.len() {
                eprintln!(
                    "({} of {} offerings shown; --limit 0 shows all)",
                    items.len(),
                    total
                );
            } else {
                eprintln!("({} offerings)", total);
            }
        }
    }
    Ok(())
}

fn list(a: &ListArgs) -> Result<(), CliError> {
    let cat = load_catalog(&a.common)?;
    if let Some(acc) = &a.accelerator {
        if !cat
            .accelerator_names()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(acc))
        {
            let known: Vec<&str> = cat.accelerator_names().into_iter().collect();
            return Err(CliError::Input(format!(
                "--accelerator: no offering has '{acc}' (known: {})",
                known.join(", ")
            )));
        }
    }
    if let Some(p) = &a.provider {
        if !cat.providers().contains(p.to_ascii_lowercase().as_str()) {
            return Err(CliError::Input(format!(
                "--provider: unknown provider '{p}' (known: {})",
                cat.providers().into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let max = match a.max_price {
        Some(v) => Some(
            Usd::from_f64_rounded(v)
                .filter(|u| *u >= Usd::ZERO)
                .ok_or_else(|| {
                    CliError::Input("--max-price must be a non-negative number".into())
                })?,
        ),
        None => None,
    };
    let region_filter = a.region.as_ref().map(|r| r.to_ascii_lowercase());
    let mut items: Vec<&Offering> = cat
        .offerings
        .iter()
        .filter(|o| {
            a.accelerator
                .as_ref()
                .is_none_or(|x| o.accelerator.eq_ignore_ascii_case(x))
        })
        .filter(|o| {
            a.provider
                .as_ref()
                .is_none_or(|x| o.region.provider.eq_ignore_ascii_case(x))
        })
        .filter(|o| {
            region_filter
                .as_ref()
                .is_none_or(|r| match r.split_once(':') {
                    Some((p, rr)) => o.region.provider == p && o.region.region == rr,
                    None => o.region.region == *r,
                })
        })
        .filter(|o| {
            a.geography.as_ref().is_none_or(|g| {
                regions::geography(&o.region.provider, &o.region.region) == g.to_ascii_lowercase()
            })
        })
        .filter(|o| !a.spot || o.spot_usd_per_hour.is_some())
        .filter(|o| {
            max.is_none_or(|m| {
                let price = if a.spot {
                    o.spot_usd_per_hour
                } else {
                    o.on_demand_usd_per_hour.or(o.spot_usd_per_hour)
                };
                price.is_some_and(|p| p <= m)
            })
        })
        .collect();
    items.sort_by(|x, y| {
        let px = x.on_demand_usd_per_hour.or(x.spot_usd_per_hour);
        let py = y.on_demand_usd_per_hour.or(y.spot_usd_per_hour);
        (&x.accelerator, x.accelerator_count, px, &x.region, &x.sku).cmp(&(
            &y.accelerator,
            y.accelerator_count,
            py,
            &y.region,
            &y.sku,
        ))
    });
    let total = items.len();
    if a.limit > 0 && a.common.output == Output::Table {
        items.truncate(a.limit);
    }
    emit(&cat, &items, a.common.output, total)
}

fn show(a: &ShowArgs) -> Result<(), CliError> {
    let cat = load_catalog(&a.common)?;
    let items = cat.by_sku(&a.sku);
    if items.is_empty() {
        let skus: std::collections::BTreeSet<&str> =
            cat.offerings.iter().map(|o| o.sku.as_str()).collect();
        let lower = a.sku.to_ascii_lowercase();
        let close: Vec<&str> = skus
            .iter()
            .filter(|s| {
                s.to_ascii_lowercase().contains(&lower) || lower.contains(&s.to_ascii_lowercase())
            })
            .take(8)
            .copied()
            .collect();
        return Err(CliError::Input(format!(
            "no instance type '{}' in the catalog{}",
            a.sku,
            if close.is_empty() {
                String::new()
            } else {
                format!(" (similar: {})", close.join(", "))
            }
        )));
    }
    if a.common.output == Output::Table {
        let o = items[0];
        if let Some(spec) = cat.accelerators.get(&o.accelerator) {
            outln!(
                "{}: {} x {} ({} {}, {} GiB, {} dense BF16 TFLOPS each; {})\nsource: {}\n",
                o.sku,
                o.accelerator_count,
                o.accelerator,
                spec.vendor,
                spec.generation,
                num(spec.memory_gib),
                num(spec.bf16_tflops_dense),
                spec.year,
                o.source
            );
        } else if let Some(t) = cat.accelerators.unit_tflops(&o.accelerator) {
            outln!(
                "{}: {} ({} dense BF16 TFLOPS per slice)\nsource: {}\n",
                o.sku,
                o.accelerator,
                num(t),
                o.source
            );
        }
    }
    emit(&cat, &items, a.common.output, items.len())
}

#[derive(Serialize)]
struct ImportReport {
    file: String,
    provider: String,
    offerings_imported: usize,
    regions: usize,
    notes: Vec<NoteView>,
    catalog_offerings: usize,
    out: String,
}

#[derive(Serialize)]
struct NoteView {
    sku: String,
    region: String,
    action: String,
    reason: String,
}

/// Writes `offerings` (sorted) as a Skyward catalog at `out`: to a
/// temporary file checked to read back, then renamed, so an existing
/// catalog is never left half-written.
pub(crate) fn write_catalog(
    out: &std::path::Path,
    offerings: &mut [Offering],
) -> Result<(), CliError> {
    offerings.sort_by(|x, y| {
        (&x.region, &x.sku, &x.accelerator, x.accelerator_count).cmp(&(
            &y.region,
            &y.sku,
            &y.accelerator,
            y.accelerator_count,
        ))
    });
    let tmp = out.with_extension("tmp-catalog");
    {
        let f = std::fs::File::create(&tmp)
            .map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
        format::write_offerings(std::io::BufWriter::new(f), offerings)
            .map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    }
    let back = std::fs::read_to_string(&tmp).map_err(|e| CliError::Io(e.to_string()))?;
    if let Err(e) = format::read_offerings(back.as_bytes(), &tmp.display().to_string()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::Internal(format!(
            "the written catalog does not read back: {e}"
        )));
    }
    std::fs::rename(&tmp, out).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))
}

fn import(a: &ImportArgs) -> Result<(), CliError> {
    let shown = a.file.display().to_string();
    let provider = a.provider.trim().to_ascii_lowercase();
    if provider.is_empty()
        || !provider
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(CliError::Input(format!(
            "--provider: '{}' is not a provider name (letters, digits, '-')",
            a.provider
        )));
    }
    let f = std::fs::File::open(&a.file).map_err(|e| CliError::Io(format!("{shown}: {e}")))?;
    let (imported, notes) = match a.format {
        ImportFormat::Skypilot => skypilot::import(&provider, std::io::BufReader::new(f), &shown)
            .map_err(|e| CliError::Input(e.to_string()))?,
    };
    let mut offerings: Vec<Offering> = if a.only {
        Vec::new()
    } else {
        let base = load_catalog(&a.common)?;
        base.offerings
            .into_iter()
            .filter(|o| o.region.provider != provider)
            .collect()
    };
    let regions: std::collections::BTreeSet<_> =
        imported.iter().map(|o| o.region.clone()).collect();
    let n_imported = imported.len();
    offerings.extend(imported);
    write_catalog(&a.out, &mut offerings)?;
    let report = ImportReport {
        file: shown,
        provider: provider.clone(),
        offerings_imported: n_imported,
        regions: regions.len(),
        notes: notes
            .iter()
            .map(|n| NoteView {
                sku: n.sku.clone(),
                region: n.region.clone(),
                action: n.action.to_string(),
                reason: n.reason.clone(),
            })
            .collect(),
        catalog_offerings: offerings.len(),
        out: a.out.display().to_string(),
    };
    match a.common.output {
        Output::Json => outln!("{}", json(&report)?),
        Output::Table => {
            outln!(
                "imported {} {} offerings in {} regions from {}",
                n_imported,
                provider,
                regions.len(),
                report.file
            );
            if !notes.is_empty() {
                outln!("{} rows fixed or dropped:", notes.len());
                let mut t = Table::new(&["SKU", "REGION", "ACTION", "REASON"]);
                for n in notes.iter().take(50) {
                    t.row(vec![
                        n.sku.clone(),
                        n.region.clone(),
                        n.action.to_string(),
                        n.reason.clone(),
                    ]);
                }
                out!("{}", t.render());
                if notes.len() > 50 {
                    outln!("… and {} more (--output json lists all)", notes.len() - 50);
                }
            }
            outln!(
                "wrote {} offerings to {}; use it with --catalog {}",
                offerings.len(),
                report.out,
                report.out
            );
        }
    }
    Ok(())
}

fn accelerators(c: &Common) -> Result<(), CliError> {
    let cat = load_catalog(c)?;
    let specs: Vec<_> = cat.accelerators.all().collect();
    match c.output {
        Output::Json => outln!("{}", json(&specs)?),
        Output::Table => {
            let mut t = Table::new(&[
                "NAME",
                "VENDOR",
                "GENERATION",
                "YEAR>",
                "MEMORY GIB>",
                "BF16 TFLOPS>",
                "SOURCE",
            ]);
            for s in specs {
                t.row(vec![
                    s.name.clone(),
                    s.vendor.clone(),
                    s.generation.clone(),
                    s.year.to_string(),
                    num(s.memory_gib),
                    num(s.bf16_tflops_dense),
                    s.source.clone(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

fn region_list(c: &Common) -> Result<(), CliError> {
    let cat = load_catalog(c)?;
    let infos: Vec<_> = cat.regions().into_iter().map(|k| cat.region(k)).collect();
    match c.output {
        Output::Json => outln!("{}", json(&infos)?),
        Output::Table => {
            let mut t = Table::new(&["PROVIDER", "REGION", "GEO", "CONTINENT", "CERTIFICATIONS"]);
            for i in &infos {
                t.row(vec![
                    i.key.provider.clone(),
                    i.key.region.clone(),
                    i.geography.clone(),
                    i.continent.clone(),
                    i.compliance.join(", "),
                ]);
            }
            out!("{}", t.render());
            eprintln!("(geography and certifications by rule: crates/skyward-catalog/src/regions.rs lists the sources)");
        }
    }
    Ok(())
}

fn notes(c: &Common) -> Result<(), CliError> {
    let notes = skyward_catalog::build_notes();
    match c.output {
        Output::Json => outln!("{}", json(&notes)?),
        Output::Table => {
            let mut t = Table::new(&["PROVIDER", "SKU", "ACTION", "REGIONS>", "REASON"]);
            for n in notes {
                t.row(vec![
                    n.provider,
                    n.sku,
                    n.action,
                    n.regions.to_string(),
                    n.reason,
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}
