//! GCP: GPU rows price the accelerators only; the host VM is a separate
//! row. A full instance price is host + GPUs in the same zone (as SkyPilot's
//! `gcp_catalog.py` adds them). TPU rows are complete on their own.

use crate::skypilot::{NoteAction, RowNote, ZoneRow};
use std::collections::BTreeMap;

/// The host machine type SkyPilot pairs with `accelerator × count`.
/// T4/V100/P100/P4 attach to N1 hosts; Skyward uses n1-standard with
/// 8 vCPUs per GPU (SkyPilot's own default is n1-highmem, not in the
/// extract).
pub fn host_for(accelerator: &str, count: u32) -> Option<String> {
    let n = count;
    let name = match accelerator {
        "A100" if n == 16 => "a2-megagpu-16g".to_string(),
        "A100" if matches!(n, 1 | 2 | 4 | 8) => format!("a2-highgpu-{n}g"),
        "A100-80GB" if matches!(n, 1 | 2 | 4 | 8) => format!("a2-ultragpu-{n}g"),
        "H100" if matches!(n, 1 | 2 | 4 | 8) => format!("a3-highgpu-{n}g"),
        "H100-MEGA" if n == 8 => "a3-megagpu-8g".to_string(),
        "H200" if n == 8 => "a3-ultragpu-8g".to_string(),
        "B200" if n == 8 => "a4-highgpu-8g".to_string(),
        "L4" => match n {
            1 => "g2-standard-4".to_string(),
            2 => "g2-standard-24".to_string(),
            4 => "g2-standard-48".to_string(),
            8 => "g2-standard-96".to_string(),
            _ => return None,
        },
        "T4" | "V100" | "P100" | "P4" if matches!(n, 1 | 2 | 4 | 8) => {
            format!("n1-standard-{}", (8 * n).min(96))
        }
        _ => return None,
    };
    Some(name)
}

/// Joins GPU rows with host rows per zone. Rows with an accelerator and an
/// instance type (TPUs) pass through.
pub fn join_hosts(rows: Vec<ZoneRow>, notes: &mut Vec<RowNote>) -> Vec<ZoneRow> {
    let mut hosts: BTreeMap<(String, String), ZoneRow> = BTreeMap::new();
    let mut accel_rows = Vec::new();
    for r in rows {
        if r.accelerator.is_empty() {
            hosts.insert((r.sku.clone(), r.zone.clone()), r);
        } else {
            accel_rows.push(r);
        }
    }
    let mut out = Vec::with_capacity(accel_rows.len());
    for r in accel_rows {
        let is_tpu = r.accelerator.starts_with("tpu-");
        if is_tpu || !r.sku.is_empty() {
            out.push(r);
            continue;
        }
        let count = r.accelerator_count as u32;
        let Some(host_type) = host_for(&r.accelerator, count) else {
            notes.push(RowNote {
                provider: "gcp".into(),
                sku: format!("{}:{}", r.accelerator, count),
                region: r.region.clone(),
                action: NoteAction::Dropped,
                reason: "no host machine type pairs with this GPU count".into(),
            });
            continue;
        };
        let Some(host) = hosts.get(&(host_type.clone(), r.zone.clone())) else {
            notes.push(RowNote {
                provider: "gcp".into(),
                sku: host_type,
                region: r.region.clone(),
                action: NoteAction::Dropped,
                reason: "no host VM row in this zone to complete the GPU price".into(),
            });
            continue;
        };
        let add = |a: Option<skyward_model::Usd>, b: Option<skyward_model::Usd>| match (a, b) {
            (Some(x), Some(y)) => Some(x + y),
            _ => None,
        };
        out.push(ZoneRow {
            line: r.line,
            sku: host_type,
            accelerator: r.accelerator.clone(),
            accelerator_count: r.accelerator_count,
            vcpus: host.vcpus,
            memory_gib: host.memory_gib,
            on_demand: add(r.on_demand, host.on_demand),
            spot: add(r.spot, host.spot),
            region: r.region.clone(),
            zone: r.zone.clone(),
        });
    }
    out
}
