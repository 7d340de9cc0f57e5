//! What changed between two catalogs: offerings added and removed, and
//! price changes (on-demand and spot), keyed by provider, region and SKU.
//! What the simulator's price paths and the ledger's list-price checks
//! need to know when a catalog is refreshed.

use serde::Serialize;
use skyward_model::{Offering, Usd};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceChange {
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub accelerator: String,
    /// "on-demand" or "spot".
    pub pricing: &'static str,
    pub old_usd_per_hour: Option<Usd>,
    pub new_usd_per_hour: Option<Usd>,
    /// (new − old) ÷ old, percent; None when either is missing.
    pub change_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub provider: String,
    pub region: String,
    pub sku: String,
    pub accelerator: String,
    pub accelerator_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CatalogDiff {
    pub unchanged: usize,
    pub added: Vec<Listed>,
    pub removed: Vec<Listed>,
    pub changed: Vec<PriceChange>,
}

fn key(o: &Offering) -> (String, String, String) {
    (
        o.region.provider.clone(),
        o.region.region.to_ascii_lowercase(),
        o.sku.to_ascii_lowercase(),
    )
}

fn listed(o: &Offering) -> Listed {
    Listed {
        provider: o.region.provider.clone(),
        region: o.region.region.clone(),
        sku: o.sku.clone(),
        accelerator: o.accelerator.clone(),
        accelerator_count: o.accelerator_count,
    }
}

/// The changes from `old` to `new`, in provider, region and SKU order.
pub fn diff(old: &[Offering], new: &[Offering]) -> CatalogDiff {
    let a: BTreeMap<_, &Offering> = old.iter().map(|o| (key(o), o)).collect();
    let b: BTreeMap<_, &Offering> = new.iter().map(|o| (key(o), o)).collect();
    let mut d = CatalogDiff::default();
    for (k, o) in &a {
        let Some(n) = b.get(k) else {
            d.removed.push(listed(o));
            continue;
        };
        let mut same = true;
        for (pricing, x, y) in [
            (
                "on-demand",
                o.on_demand_usd_per_hour,
                n.on_demand_usd_per_hour,
            ),
            ("spot", o.spot_usd_per_hour, n.spot_usd_per_hour),
        ] {
            if x != y {
                same = false;
                d.changed.push(PriceChange {
                    provider: n.region.provider.clone(),
                    region: n.region.region.clone(),
                    sku: n.sku.clone(),
                    accelerator: n.accelerator.clone(),
                    pricing,
                    old_usd_per_hour: x,
                    new_usd_per_hour: y,
                    change_pct: match (x, y) {
                        (Some(x), Some(y)) if x > Usd::ZERO => {
                            Some(100.0 * (y.as_f64() - x.as_f64()) / x.as_f64())
                        }
                        _ => None,
                    },
                });
            }
        }
        if same {
            d.unchanged += 1;
        }
    }
    for (k, n) in &b {
        if !a.contains_key(k) {
            d.added.push(listed(n));
        }
    }
    d
}
