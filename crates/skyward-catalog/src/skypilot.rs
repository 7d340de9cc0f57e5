//! Importer for SkyPilot v8 `vms.csv` catalogs.
//!
//! SkyPilot lists one row per instance type × zone; the column order differs
//! per cloud, so columns are found by header name. Rows are folded into one
//! [`Offering`] per (region, instance type, accelerator, count): the
//! on-demand price is the cheapest zone's (it is the same in every zone in
//! the sources seen), the spot price is the cheapest zone's spot price.
//!
//! Every row that is dropped or fixed is recorded with a reason, so the
//! output says what it did not trust.

use skyward_model::{Offering, RegionKey, Usd};
use std::collections::BTreeMap;
use std::io::Read;

/// Upper bound on rows read from one file.
pub const ROWS_MAX: usize = 5_000_000;

/// An hourly price above this is treated as a typo (the dearest real rows
/// are TPU v5p pod slices of 6,144 chips at ~$29,400/h).
pub const PRICE_USD_PER_HOUR_MAX: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("{file}: header lacks column '{column}' (a SkyPilot v8 vms.csv has InstanceType, AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB, Price, SpotPrice, Region)")]
    MissingColumn { file: String, column: String },
    #[error("{file}:{line}: {message}")]
    Row {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: more than {max} rows; split the file")]
    TooManyRows { file: String, max: usize },
    #[error("{file}: no accelerator rows found")]
    Empty { file: String },
}

/// A row the importer dropped or changed, with why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowNote {
    pub provider: String,
    pub sku: String,
    pub region: String,
    pub action: NoteAction,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteAction {
    Dropped,
    Fixed,
}

impl std::fmt::Display for NoteAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoteAction::Dropped => "dropped",
            NoteAction::Fixed => "fixed",
        })
    }
}

/// One parsed zone row, before folding into regions.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneRow {
    pub line: u64,
    pub sku: String,
    pub accelerator: String,
    pub accelerator_count: f64,
    pub vcpus: f64,
    pub memory_gib: f64,
    pub on_demand: Option<Usd>,
    pub spot: Option<Usd>,
    pub region: String,
    pub zone: String,
}

struct Columns {
    sku: usize,
    accel: usize,
    count: usize,
    vcpus: usize,
    mem: usize,
    price: usize,
    spot: usize,
    region: usize,
    zone: Option<usize>,
}

fn find(headers: &csv::StringRecord, name: &str, file: &str) -> Result<usize, ImportError> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| ImportError::MissingColumn {
            file: file.to_string(),
            column: name.to_string(),
        })
}

fn parse_price(text: &str, what: &str) -> Result<Option<Usd>, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let usd = Usd::parse(t).map_err(|e| format!("{what}: {e}"))?;
    if usd < Usd::ZERO {
        return Err(format!("{what}: negative price {t}"));
    }
    if usd > Usd::from_dollars(PRICE_USD_PER_HOUR_MAX) {
        return Err(format!(
            "{what}: {t} $/h is above the sanity limit of {PRICE_USD_PER_HOUR_MAX} $/h"
        ));
    }
    Ok(Some(usd))
}

fn parse_num(text: &str, what: &str) -> Result<f64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0.0);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{what}: '{t}' is not a non-negative number")),
    }
}

/// Reads every row that names an accelerator. Rows without one (CPU VMs)
/// are skipped silently; malformed rows are errors naming the line.
pub fn read_zone_rows<R: Read>(
    reader: R,
    file: &str,
    keep_cpu_rows: bool,
) -> Result<Vec<ZoneRow>, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Io {
            file: file.to_string(),
            message: e.to_string(),
        })?
        .clone();
    let cols = Columns {
        sku: find(&headers, "InstanceType", file)?,
        accel: find(&headers, "AcceleratorName", file)?,
        count: find(&headers, "AcceleratorCount", file)?,
        vcpus: find(&headers, "vCPUs", file)?,
        mem: find(&headers, "MemoryGiB", file)?,
        price: find(&headers, "Price", file)?,
        spot: find(&headers, "SpotPrice", file)?,
        region: find(&headers, "Region", file)?,
        zone: headers.iter().position(|h| h.trim() == "AvailabilityZone"),
    };
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        if i >= ROWS_MAX {
            return Err(ImportError::TooManyRows {
                file: file.to_string(),
                max: ROWS_MAX,
            });
        }
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            ImportError::Row {
                file: file.to_string(),
                line,
                message: e.to_string(),
            }
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
        let get = |c: usize| rec.get(c).unwrap_or("").trim();
        let accelerator = get(cols.accel);
        if accelerator.is_empty() && !keep_cpu_rows {
            continue;
        }
        let row_err = |message: String| ImportError::Row {
            file: file.to_string(),
            line,
            message,
        };
        let region = get(cols.region);
        if region.is_empty() {
            return Err(row_err("Region is empty".to_string()));
        }
        rows.push(ZoneRow {
            line,
            sku: get(cols.sku).to_string(),
            accelerator: accelerator.to_string(),
            accelerator_count: parse_num(get(cols.count), "AcceleratorCount").map_err(row_err)?,
            vcpus: parse_num(get(cols.vcpus), "vCPUs").map_err(row_err)?,
            memory_gib: parse_num(get(cols.mem), "MemoryGiB").map_err(row_err)?,
            on_demand: parse_price(get(cols.price), "Price").map_err(row_err)?,
            spot: parse_price(get(cols.spot), "SpotPrice").map_err(row_err)?,
            region: region.to_string(),
            zone: cols.zone.map(|c| get(c).to_string()).unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// Per-provider corrections for known-bad source rows. Returns the row to
/// keep (possibly changed) or None, and notes what was done.
pub type RowFixer = dyn Fn(&str, ZoneRow, &mut Vec<RowNote>) -> Option<ZoneRow>;

/// Folds zone rows into one offering per (region, sku, accelerator, count).
pub fn fold_offerings(
    provider: &str,
    rows: Vec<ZoneRow>,
    source: &str,
    fixer: &RowFixer,
    notes: &mut Vec<RowNote>,
) -> Vec<Offering> {
    type Key = (String, String, String, u32);
    let mut by_key: BTreeMap<Key, (Offering, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let Some(row) = fixer(provider, row, notes) else {
            continue;
        };
        let note = |reason: &str, notes: &mut Vec<RowNote>| {
            notes.push(RowNote {
                provider: provider.to_string(),
                sku: row.sku.clone(),
                region: row.region.clone(),
                action: NoteAction::Dropped,
                reason: reason.to_string(),
            })
        };
        if row.accelerator_count.fract() != 0.0 || row.accelerator_count < 1.0 {
            note(
                "fractional or zero accelerator count (partitioned GPUs are not supported)",
                notes,
            );
            continue;
        }
        if row.on_demand.is_none() && row.spot.is_none() {
            note("no price in the source", notes);
            continue;
        }
        let sku = if row.sku.is_empty() {
            row.accelerator.clone()
        } else {
            row.sku.clone()
        };
        let count = row.accelerator_count as u32;
        let key = (
            row.region.to_ascii_lowercase(),
            sku.clone(),
            row.accelerator.clone(),
            count,
        );
        let entry = by_key.entry(key).or_insert_with(|| {
            (
                Offering {
                    region: RegionKey::new(provider, &row.region),
                    sku: sku.clone(),
                    accelerator: row.accelerator.clone(),
                    accelerator_count: count,
                    vcpus: row.vcpus,
                    memory_gib: row.memory_gib,
                    on_demand_usd_per_hour: None,
                    spot_usd_per_hour: None,
                    zones: 0,
                    source: source.to_string(),
                },
                Vec::new(),
            )
        });
        let (off, zones) = entry;
        off.on_demand_usd_per_hour = min_opt(off.on_demand_usd_per_hour, row.on_demand);
        off.spot_usd_per_hour = min_opt(off.spot_usd_per_hour, row.spot);
        if !zones.contains(&row.zone) {
            zones.push(row.zone.clone());
            off.zones += 1;
        }
    }
    by_key.into_values().map(|(o, _)| o).collect()
}

fn min_opt(a: Option<Usd>, b: Option<Usd>) -> Option<Usd> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Imports a user's SkyPilot v8 `vms.csv` for one provider.
pub fn import<R: Read>(
    provider: &str,
    reader: R,
    file: &str,
) -> Result<(Vec<Offering>, Vec<RowNote>), ImportError> {
    let is_gcp = provider == "gcp";
    let rows = read_zone_rows(reader, file, is_gcp)?;
    let mut notes = Vec::new();
    let rows = if is_gcp {
        crate::gcp::join_hosts(rows, &mut notes)
    } else {
        rows
    };
    let offerings = fold_offerings(
        provider,
        rows,
        &format!("import:{file}"),
        &crate::fixes::known_fixes,
        &mut notes,
    );
    if offerings.is_empty() {
        return Err(ImportError::Empty {
            file: file.to_string(),
        });
    }
    Ok((offerings, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: &str = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone,Arch\n\
p5.48xlarge,H100,8.0,192.0,2048.0,\"{'x': 1}\",55.04,11.9912,us-east-2,use2-az3,x86_64\n\
p5.48xlarge,H100,8.0,192.0,2048.0,\"{'x': 1}\",55.04,11.2543,us-east-2,use2-az1,x86_64\n\
m5.large,,,2.0,8.0,,0.096,0.03,us-east-2,use2-az1,x86_64\n\
g6f.large,L4,0.125,2.0,8.0,,0.2,,us-east-2,use2-az1,x86_64\n\
p5e.48xlarge,H200,8.0,192.0,2048.0,,,,us-east-2,use2-az1,x86_64\n";

    #[test]
    fn folds_zones_and_drops_with_reasons() {
        let (offs, notes) = import("aws", AWS.as_bytes(), "vms.csv").unwrap();
        assert_eq!(offs.len(), 1);
        let p5 = &offs[0];
        assert_eq!(p5.sku, "p5.48xlarge");
        assert_eq!(p5.accelerator_count, 8);
        assert_eq!(
            p5.on_demand_usd_per_hour,
            Some(Usd::parse("55.04").unwrap())
        );
        assert_eq!(p5.spot_usd_per_hour, Some(Usd::parse("11.2543").unwrap()));
        assert_eq!(p5.zones, 2);
        let reasons: Vec<_> = notes.iter().map(|n| n.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("fractional")));
        assert!(reasons.iter().any(|r| r.contains("no price")));
    }

    #[test]
    fn gcp_gpu_rows_are_completed_with_their_host_vm() {
        // The data README's example: a3-highgpu-8g in us-central1-a is host
        // 9.46006 + H100x8 33.60609 = 43.06615 (spot 2.88933 + 23.9408).
        let gcp = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice\n\
a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-a,9.46006,2.88933\n\
,,,H100,8,,us-central1,us-central1-a,33.60609,23.9408\n\
,,,H100,8,,us-east4,us-east4-a,78.37241,20.04446\n\
,,,tpu-v5p-8,1,,us-central1,us-central1-a,16.8,\n";
        let (offs, notes) = import("gcp", gcp.as_bytes(), "gcp.csv").unwrap();
        let a3 = offs.iter().find(|o| o.sku == "a3-highgpu-8g").unwrap();
        assert_eq!(
            a3.on_demand_usd_per_hour,
            Some(Usd::parse("43.06615").unwrap())
        );
        assert_eq!(a3.spot_usd_per_hour, Some(Usd::parse("26.83013").unwrap()));
        assert_eq!((a3.vcpus, a3.accelerator_count), (208.0, 8));
        assert!(offs.iter().any(|o| o.sku == "tpu-v5p-8"
            && o.on_demand_usd_per_hour == Some(Usd::parse("16.8").unwrap())));
        // us-east4 has no host row here: dropped, with a reason.
        assert!(!offs.iter().any(|o| o.region.region == "us-east4"));
        assert!(notes
            .iter()
            .any(|n| n.region == "us-east4" && n.reason.contains("no host VM row")));
    }

    #[test]
    fn malformed_rows_name_the_line() {
        let bad = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\n\
a,H100,8,1,1,12.5,,us-east-1\n\
b,H100,8,1,1,twelve,,us-east-1\n";
        let err = import("aws", bad.as_bytes(), "f.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.csv:3") && err.contains("Price"), "{err}");
        let missing = "InstanceType,AcceleratorName\nx,y\n";
        let err = import("aws", missing.as_bytes(), "f.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AcceleratorCount"), "{err}");
        let ragged = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\na,H100,8\n";
        assert!(import("aws", ragged.as_bytes(), "f.csv").is_err());
        let huge = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\na,H100,8,1,1,999999,,us-east-1\n";
        assert!(import("aws", huge.as_bytes(), "f.csv")
            .unwrap_err()
            .to_string()
            .contains("sanity"));
    }
}
