//! Skyward's catalog: what can be bought where, at what price, and the
//! facts placement needs about it (accelerator speed, region residency and
//! certifications, inter-region RTT and egress).
//!
//! The built-in catalog is embedded in the binary (`data/`), derived from
//! public SkyPilot catalog rows by `build-catalog` (see `data/PROVENANCE.md`).
//! A user's own catalog file replaces it with `--catalog PATH`.

pub mod accelerators;
pub mod aws;
pub mod azure;
pub mod build;
pub mod diff;
pub mod fixes;
pub mod format;
pub mod gcp;
pub mod gcp_billing;
pub mod network;
pub mod regions;
pub mod skypilot;

pub use accelerators::AcceleratorTable;
pub use network::Network;

use skyward_model::{Offering, RegionInfo, RegionKey};
use std::collections::BTreeSet;
use std::path::Path;

pub const OFFERINGS_CSV: &str = include_str!("../data/offerings.csv");
pub const NOTES_CSV: &str = include_str!("../data/notes.csv");
/// Snapshot date of the built-in catalog's source rows.
pub const SNAPSHOT_DATE: &str = "2026-11-26";
pub const BUILTIN_ORIGIN: &str =
    "built-in: SkyPilot catalog v8 (Azure v6) public list prices, extracted 2026-11-26; see PROVENANCE.md";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{path}: cannot read: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error(transparent)]
    Import(#[from] skypilot::ImportError),
    #[error("{path}: this looks like a SkyPilot vms.csv; import it first: skyward catalog import --format skypilot --provider PROVIDER {path} --out my-catalog.csv")]
    NeedsImport { path: String },
    #[error("{path}: the catalog has no offerings")]
    Empty { path: String },
    #[error("built-in catalog is corrupt: {0}")]
    Builtin(String),
}

/// A source row the built-in catalog fixed or dropped, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildNote {
    pub provider: String,
    pub sku: String,
    pub action: String,
    pub regions: u32,
    pub reason: String,
}

/// What a known instance type has: accelerator, count, vCPUs, memory
/// (GiB), by lower-case type name. A provider's price source says what a
/// type costs, not what it holds: `catalog fetch` keeps the types a
/// catalog already knows.
pub type Known = std::collections::BTreeMap<String, (String, u32, f64, f64)>;

/// The instance types of `provider` that `offerings` has.
pub fn known_sizes(offerings: &[skyward_model::Offering], provider: &str) -> Known {
    let mut out = Known::new();
    for o in offerings.iter().filter(|o| o.region.provider == provider) {
        out.entry(o.sku.to_ascii_lowercase()).or_insert((
            o.accelerator.clone(),
            o.accelerator_count,
            o.vcpus,
            o.memory_gib,
        ));
    }
    out
}

/// The built-in catalog's fix/drop notes (`data/notes.csv`), then what
/// it lacks that no public source available offline prices (filled by
/// `skyward catalog fetch`).
pub fn build_notes() -> Vec<BuildNote> {
    let mut rdr = csv::Reader::from_reader(NOTES_CSV.as_bytes());
    let mut out: Vec<BuildNote> = rdr
        .records()
        .flatten()
        .map(|r| {
            let g = |i: usize| r.get(i).unwrap_or("").to_string();
            BuildNote {
                provider: g(0),
                sku: g(1),
                action: g(2),
                regions: g(3).parse().unwrap_or(0),
                reason: g(4),
            }
        })
        .collect();
    out.push(BuildNote {
        provider: "azure".into(),
        sku: "*".into(),
        action: "missing".into(),
        regions: 0,
        reason: "the built-in Azure rows (SkyPilot's Azure v6 extract) cover US regions only; `skyward catalog fetch --provider azure --regions …` adds the others from the Retail Prices API".into(),
    });
    for (sku, acc, n, _, _, source) in azure::SIZES_NOT_IN_EXTRACT {
        out.push(BuildNote {
            provider: "azure".into(),
            sku: sku.to_string(),
            action: "missing".into(),
            regions: 0,
            reason: format!("{acc}:{n} ({source}): no public list price in the built-in extract, none made up; `skyward catalog fetch --provider azure` prices it"),
        });
    }
    out
}

/// The first `YYYY-MM-DD` in a row's source (its extract or fetch date).
fn source_date(source: &str) -> Option<&str> {
    let b = source.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let d = &b[i..i + 10];
        let digits = |r: std::ops::Range<usize>| d[r].iter().all(u8::is_ascii_digit);
        (digits(0..4) && d[4] == b'-' && digits(5..7) && d[7] == b'-' && digits(8..10))
            .then(|| &source[i..i + 10])
    })
}

/// When each provider's prices in `offerings` were taken, from the rows'
/// sources: `aws 2026-12-02, azure 2026-11-26…2026-12-02, oci undated`.
pub fn price_dates(offerings: &[Offering]) -> String {
    let mut by: std::collections::BTreeMap<&str, (Option<&str>, Option<&str>, bool)> =
        std::collections::BTreeMap::new();
    for o in offerings {
        let e = by
            .entry(o.region.provider.as_str())
            .or_insert((None, None, false));
        match source_date(&o.source) {
            Some(d) => {
                e.0 = Some(e.0.map_or(d, |x| x.min(d)));
                e.1 = Some(e.1.map_or(d, |x| x.max(d)));
            }
            None => e.2 = true,
        }
    }
    by.into_iter()
        .map(|(p, (lo, hi, undated))| {
            let dated = match (lo, hi) {
                (Some(a), Some(b)) if a == b => a.to_string(),
                (Some(a), Some(b)) => format!("{a}…{b}"),
                _ => String::new(),
            };
            match (dated.is_empty(), undated) {
                (true, _) => format!("{p} undated"),
                (false, true) => format!("{p} {dated} (some rows undated)"),
                (false, false) => format!("{p} {dated}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub offerings: Vec<Offering>,
    pub accelerators: AcceleratorTable,
    pub network: Network,
    /// Where the offerings came from, for output headers.
    pub origin: String,
}

impl Catalog {
    pub fn builtin() -> Result<Catalog, CatalogError> {
        let offerings = format::read_offerings(OFFERINGS_CSV.as_bytes(), "offerings.csv")
            .map_err(|e| CatalogError::Builtin(e.to_string()))?;
        Ok(Catalog {
            offerings,
            accelerators: AcceleratorTable::builtin(),
            network: Network::builtin(),
            origin: BUILTIN_ORIGIN.to_string(),
        })
    }

    /// Loads a Skyward catalog file (as written by `skyward catalog import`).
    pub fn from_file(path: &Path) -> Result<Catalog, CatalogError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Io {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let first = text.lines().next().unwrap_or("");
        if !format::is_skyward_header(first)
            && first.contains("InstanceType")
            && first.contains("AcceleratorName")
        {
            return Err(CatalogError::NeedsImport { path: shown });
        }
        let offerings = format::read_offerings(text.as_bytes(), &shown)?;
        if offerings.is_empty() {
            return Err(CatalogError::Empty { path: shown });
        }
        let dates = price_dates(&offerings);
        Ok(Catalog {
            offerings,
            accelerators: AcceleratorTable::builtin(),
            network: Network::builtin(),
            origin: format!("{shown} (prices as of {dates})"),
        })
    }

    pub fn load(path: Option<&Path>) -> Result<Catalog, CatalogError> {
        match path {
            Some(p) => Catalog::from_file(p),
            None => Catalog::builtin(),
        }
    }

    pub fn region(&self, key: &RegionKey) -> RegionInfo {
        regions::region_info(&key.provider, &key.region)
    }

    pub fn providers(&self) -> BTreeSet<&str> {
        self.offerings
            .iter()
            .map(|o| o.region.provider.as_str())
            .collect()
    }

    pub fn regions(&self) -> BTreeSet<&RegionKey> {
        self.offerings.iter().map(|o| &o.region).collect()
    }

    pub fn accelerator_names(&self) -> BTreeSet<&str> {
        self.offerings
            .iter()
            .map(|o| o.accelerator.as_str())
            .collect()
    }

    /// Offerings of an instance type (case-insensitive), in every region.
    pub fn by_sku(&self, sku: &str) -> Vec<&Offering> {
        self.offerings
            .iter()
            .filter(|o| o.sku.eq_ignore_ascii_case(sku))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_file_says_when_each_provider_s_prices_were_taken() {
        let row = |p: &str, source: &str| Offering {
            region: RegionKey::new(p, "r"),
            sku: "x".into(),
            accelerator: "H100".into(),
            accelerator_count: 1,
            vcpus: 1.0,
            memory_gib: 1.0,
            on_demand_usd_per_hour: None,
            spot_usd_per_hour: None,
            zones: 1,
            source: source.into(),
        };
        let rows = [
            row(
                "aws",
                "AWS Price List bulk API (https://p) fetched 2026-12-02T18:44:49Z",
            ),
            row(
                "azure",
                "SkyPilot catalog v8 extract 2026-11-26: azure/vms.csv",
            ),
            row(
                "azure",
                "Azure Retail Prices API (https://p) fetched 2026-12-01T00:00:00Z",
            ),
            row("oci", "my negotiated prices"),
            row("gcp", "fetched 2026-11-30"),
            row("gcp", "hand-written"),
        ];
        assert_eq!(
            price_dates(&rows),
            "aws 2026-12-02, azure 2026-11-26…2026-12-01, gcp 2026-11-30 (some rows undated), oci undated"
        );
    }

    #[test]
    fn builtin_catalog_loads_and_covers_every_provider() {
        let c = Catalog::builtin().unwrap();
        let providers: Vec<_> = c.providers().into_iter().collect();
        assert_eq!(providers, vec!["aws", "azure", "gcp", "lambda", "oci"]);
        assert!(c.offerings.len() > 1000);
        // Spot checks against the source rows (data README).
        let p5 = c
            .offerings
            .iter()
            .find(|o| o.sku == "p5.48xlarge" && o.region.region == "us-east-2")
            .unwrap();
        assert_eq!(
            p5.on_demand_usd_per_hour,
            Some(skyward_model::Usd::parse("55.04").unwrap())
        );
        assert_eq!(
            p5.spot_usd_per_hour,
            Some(skyward_model::Usd::parse("11.2543").unwrap())
        );
        let a3 = c
            .offerings
            .iter()
            .find(|o| o.sku == "a3-highgpu-8g" && o.region.region == "us-central1")
            .unwrap();
        assert_eq!(
            a3.on_demand_usd_per_hour,
            Some(skyward_model::Usd::parse("43.06615").unwrap())
        );
        let nd = c
            .offerings
            .iter()
            .find(|o| o.sku == "Standard_ND96isr_H100_v5")
            .unwrap();
        assert_eq!(nd.accelerator_count, 8);
        // Every accelerator in the catalog has a spec (TPU slices by chip).
        for name in c.accelerator_names() {
            assert!(
                c.accelerators.unit_tflops(name).is_some(),
                "no spec for {name}"
            );
        }
    }
}
