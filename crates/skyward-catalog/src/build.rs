//! Builds the built-in catalog files in `data/` from the public source rows
//! in `shared/data/` (run by `cargo run -p skyward-catalog --bin
//! build-catalog -- SHARED_DATA_DIR OUT_DIR`). Deterministic: the same
//! sources give byte-identical files.

use crate::accelerators::AcceleratorTable;
use crate::fixes::known_fixes;
use crate::format::write_offerings;
use crate::skypilot::{fold_offerings, read_zone_rows, NoteAction, RowNote, ZoneRow};
use skyward_model::{Offering, RegionKey};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub struct BuildReport {
    pub offerings: usize,
    pub per_provider: BTreeMap<String, usize>,
    pub notes: usize,
    pub rtt_pairs: usize,
    pub egress_pairs: usize,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn zone_rows(path: &Path, keep_cpu: bool) -> Result<Vec<ZoneRow>, String> {
    let text = read(path)?;
    read_zone_rows(text.as_bytes(), &path.display().to_string(), keep_cpu)
        .map_err(|e| e.to_string())
}

/// Folds zone names (`gcp:us-central1-a`) to regions (`gcp:us-central1`).
fn region_of(key: &str) -> Option<RegionKey> {
    let k = RegionKey::parse(key)?;
    if k.provider == "gcp" {
        let bytes = k.region.as_bytes();
        let n = bytes.len();
        if n > 2 && bytes[n - 2] == b'-' && bytes[n - 1].is_ascii_lowercase() {
            return Some(RegionKey::new("gcp", &k.region[..n - 2]));
        }
    }
    Some(k)
}

/// Region-level pairs from a Skyplane CSV: the median over zone pairs.
fn fold_pairs(
    text: &str,
    src_col: &str,
    dst_col: &str,
    val_col: &str,
) -> Result<BTreeMap<(RegionKey, RegionKey), f64>, String> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().map_err(|e| e.to_string())?.clone();
    let col = |n: &str| {
        h.iter()
            .position(|x| x == n)
            .ok_or(format!("missing column {n}"))
    };
    let (s, d, v) = (col(src_col)?, col(dst_col)?, col(val_col)?);
    let mut acc: BTreeMap<(RegionKey, RegionKey), Vec<f64>> = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        let (Some(a), Some(b)) = (
            region_of(rec.get(s).unwrap_or("")),
            region_of(rec.get(d).unwrap_or("")),
        ) else {
            continue;
        };
        let Ok(x) = rec.get(v).unwrap_or("").parse::<f64>() else {
            continue;
        };
        if a != b && x.is_finite() && x >= 0.0 {
            acc.entry((a, b)).or_default().push(x);
        }
    }
    Ok(acc
        .into_iter()
        .map(|(k, mut xs)| {
            xs.sort_by(f64::total_cmp);
            (k, xs[xs.len() / 2])
        })
        .collect())
}

fn write_pairs(
    path: &Path,
    header: &str,
    pairs: &BTreeMap<(RegionKey, RegionKey), f64>,
) -> Result<(), String> {
    let mut s = String::from(header);
    s.push('\n');
    for ((a, b), v) in pairs {
        let _ = writeln!(s, "{a},{b},{}", (v * 1000.0).round() / 1000.0);
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn build(shared_data: &Path, out: &Path) -> Result<BuildReport, String> {
    let cat = shared_data.join("catalog/skypilot-v8");
    let accel = AcceleratorTable::builtin();
    let mut notes: Vec<RowNote> = Vec::new();
    let mut offerings: Vec<Offering> = Vec::new();
    let snapshot = "SkyPilot catalog v8 extract 2026-11-26";
    for provider in ["aws", "azure", "oci", "lambda"] {
        let rows = zone_rows(&cat.join(provider).join("vms_accel.csv"), false)?;
        let src = format!("{snapshot}: {provider}/vms.csv");
        offerings.extend(fold_offerings(
            provider,
            rows,
            &src,
            &known_fixes,
            &mut notes,
        ));
    }
    let mut gcp_rows = zone_rows(&cat.join("gcp/vms_accel.csv"), false)?;
    gcp_rows.extend(zone_rows(&cat.join("gcp/vms_gpu_hosts.csv"), true)?);
    let joined = crate::gcp::join_hosts(gcp_rows, &mut notes);
    let src = format!("{snapshot}: gcp/vms.csv (GPU + host VM rows joined per zone)");
    offerings.extend(fold_offerings(
        "gcp",
        joined,
        &src,
        &known_fixes,
        &mut notes,
    ));

    // Accelerators with no public spec (FPGAs, first-generation Gaudi)
    // cannot be compared with anything; leave them out, with a note.
    offerings.retain(|o| {
        let known = accel.unit_tflops(&o.accelerator).is_some();
        if !known {
            notes.push(RowNote {
                provider: o.region.provider.clone(),
                sku: o.sku.clone(),
                region: o.region.region.clone(),
                action: NoteAction::Dropped,
                reason: format!("accelerator '{}' has no entry in the accelerator table (not an ML accelerator, or no public BF16 figure)", o.accelerator),
            });
        }
        known
    });
    offerings.sort_by(|a, b| {
        (&a.region, &a.sku, &a.accelerator, a.accelerator_count).cmp(&(
            &b.region,
            &b.sku,
            &b.accelerator,
            b.accelerator_count,
        ))
    });

    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let f = std::fs::File::create(out.join("offerings.csv")).map_err(|e| e.to_string())?;
    write_offerings(std::io::BufWriter::new(f), &offerings).map_err(|e| e.to_string())?;

    // Notes, coalesced: one line per (provider, sku, action, reason) with
    // the number of regions it touched.
    let mut coalesced: BTreeMap<(String, String, NoteAction, String), Vec<String>> =
        BTreeMap::new();
    for n in &notes {
        let regions = coalesced
            .entry((
                n.provider.clone(),
                n.sku.clone(),
                n.action,
                n.reason.clone(),
            ))
            .or_default();
        if !regions.contains(&n.region) {
            regions.push(n.region.clone());
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["provider", "sku", "action", "regions", "reason"]);
    for ((p, sku, action, reason), regions) in &coalesced {
        let _ = w.write_record([
            p.as_str(),
            sku,
            &action.to_string(),
            &regions.len().to_string(),
            reason,
        ]);
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    std::fs::write(out.join("notes.csv"), bytes).map_err(|e| e.to_string())?;

    let sky = shared_data.join("traces/skyplane");
    let rtt = fold_pairs(
        &read(&sky.join("latency.csv"))?,
        "src_region",
        "dst_region",
        "avg_rtt",
    )?;
    let egress = fold_pairs(&read(&sky.join("cost.csv"))?, "src", "dest", "cost")?;
    write_pairs(&out.join("rtt.csv"), "src,dst,rtt_ms", &rtt)?;
    write_pairs(&out.join("egress.csv"), "src,dst,usd_per_gb", &egress)?;

    let mut per_provider = BTreeMap::new();
    for o in &offerings {
        *per_provider.entry(o.region.provider.clone()).or_insert(0) += 1;
    }
    Ok(BuildReport {
        offerings: offerings.len(),
        per_provider,
        notes: coalesced.len(),
        rtt_pairs: rtt.len(),
        egress_pairs: egress.len(),
    })
}
