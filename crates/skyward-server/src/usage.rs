//! Usage records → the ledger's FOCUS export (`GET /v1/usage?format=focus`,
//! `skyward usage --format focus`), which `skyward ledger import` reads.
//! One accelerator is one FOCUS "node": quantity is accelerator-hours.

use crate::db::UsageRow;
use skyward_ledger::export::{Pricing, UsageRecord};
use skyward_ledger::time::Timestamp;
use skyward_ledger::Amount;

pub fn to_ledger_record(u: &UsageRow) -> UsageRecord {
    UsageRecord {
        provider: u.provider.clone(),
        region: u.region.clone(),
        sku: u.accelerator.clone(),
        resource: format!(
            "{}/workload-{}/attempt-{}",
            u.site, u.workload_id, u.attempt
        ),
        start: Timestamp(u.from_ms.div_euclid(1000)),
        hours: (u.to_ms - u.from_ms).max(0) as f64 / 3_600_000.0,
        nodes: u.accelerators.clamp(0, i64::from(u32::MAX)) as u32,
        list_per_node_hour: Amount::from_usd_f64(
            u.price_micro_usd_per_accelerator_hour as f64 / 1e6,
        ),
        pricing: match u.price_basis.as_str() {
            "spot" => Pricing::Spot,
            "reserved" => Pricing::Reserved(u.site.clone()),
            _ => Pricing::OnDemand,
        },
        discount_pct: 0.0,
        egress: Amount::ZERO,
        egress_provider: u.provider.clone(),
        egress_discount_pct: 0.0,
    }
}
