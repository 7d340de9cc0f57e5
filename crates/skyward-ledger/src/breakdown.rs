//! `ledger breakdown`: usage cost by billing account, provider, service,
//! region, SKU, SKU family or any tag, with showback of commitments.
//!
//! Showback rule (stated in the output): a commitment's Used rows already
//! carry its amortised fee (EffectiveCost) on the usage that consumed it;
//! its Unused cost is allocated to the groups in proportion to the
//! on-demand-equivalent cost (ListCost of Used rows) each had covered by
//! that commitment in the period. Unused cost of a commitment that covered
//! nothing goes to "(unallocated)". So the groups add up to the period's
//! total usage EffectiveCost, and each group's commitment savings are its
//! covered on-demand-equivalent minus its used fee and its share of the
//! unused.

use crate::amount::Amount;
use crate::status::DayRow;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Account,
    Provider,
    Service,
    Region,
    Sku,
    SkuFamily,
    Tag(String),
}

impl Dimension {
    pub fn parse(s: &str) -> Result<Dimension, String> {
        Ok(match s {
            "account" => Dimension::Account,
            "provider" => Dimension::Provider,
            "service" => Dimension::Service,
            "region" => Dimension::Region,
            "sku" => Dimension::Sku,
            "sku-family" => Dimension::SkuFamily,
            t if t.starts_with("tag:") && t.len() > 4 => Dimension::Tag(t[4..].to_string()),
            other => {
                return Err(format!(
                    "'{other}': break down by account, provider, service, region, sku, sku-family or tag:KEY"
                ))
            }
        })
    }

    fn key(&self, r: &DayRow) -> String {
        let v = match self {
            Dimension::Account => r.billing_account.clone(),
            Dimension::Provider => r.provider.clone(),
            Dimension::Service => r.service.clone(),
            Dimension::Region => r.region.clone(),
            Dimension::Sku => r.sku.clone(),
            Dimension::SkuFamily => sku_family(&r.sku),
            Dimension::Tag(k) => tag_value(&r.tags, k).unwrap_or_default(),
        };
        if v.is_empty() {
            "(none)".into()
        } else {
            v
        }
    }
}

/// The family of a SKU: before the first '.' (p5.48xlarge → p5), else
/// without a last '-' or '_' part that holds a digit (a3-highgpu-8g →
/// a3-highgpu), else the SKU.
pub fn sku_family(sku: &str) -> String {
    if let Some((f, _)) = sku.split_once('.') {
        return f.to_string();
    }
    match sku.rfind(['-', '_']) {
        Some(i) if i > 0 && sku[i + 1..].chars().any(|c| c.is_ascii_digit()) => {
            sku[..i].to_string()
        }
        _ => sku.to_string(),
    }
}

/// The value of `key` in a canonical FOCUS Tags object (`{"k":"v",…}`).
pub fn tag_value(tags: &str, key: &str) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let m: BTreeMap<String, serde_json::Value> = serde_json::from_str(tags).ok()?;
    m.get(key).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Group {
    pub key: String,
    /// On-demand-equivalent (ListCost) of its usage.
    pub list: Amount,
    pub billed: Amount,
    /// EffectiveCost of its usage (Used rows: the amortised fee).
    pub effective: Amount,
    /// On-demand-equivalent its usage had covered by commitments.
    pub covered_list: Amount,
    /// Its share of commitments' Unused cost (the showback rule).
    pub allocated_unused: Amount,
    /// effective + allocated unused: what it is shown (charged back).
    pub cost: Amount,
    /// covered_list − (fee of its used + allocated unused).
    pub commitment_savings: Amount,
    /// list − cost.
    pub savings: Amount,
    /// Share of the total cost, 0..1.
    pub share: f64,
}

/// Groups usage in days `from..to` by `dim` (see the module docs).
pub fn breakdown(rows: &[DayRow], dim: &Dimension, from: i64, to: i64) -> Vec<Group> {
    let usage: Vec<&DayRow> = rows
        .iter()
        .filter(|r| r.category == "Usage" && r.day >= from && r.day < to)
        .collect();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    // Per commitment: its unused cost, and each group's covered list.
    let mut unused: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut covered: BTreeMap<&str, BTreeMap<String, Amount>> = BTreeMap::new();
    let mut used_fee: BTreeMap<String, Amount> = BTreeMap::new();
    // A tag's value per distinct Tags object (each is parsed once).
    let mut tag_keys: BTreeMap<&str, String> = BTreeMap::new();
    for r in &usage {
        if r.commitment_status == "Unused" {
            *unused.entry(r.commitment_id.as_str()).or_default() += r.effective;
            continue;
        }
        let k = match dim {
            Dimension::Tag(_) => tag_keys
                .entry(r.tags.as_str())
                .or_insert_with(|| dim.key(r))
                .clone(),
            _ => dim.key(r),
        };
        let g = groups.entry(k.clone()).or_insert_with(|| Group {
            key: k.clone(),
            ..Group::default()
        });
        g.list += r.list;
        g.billed += r.billed;
        g.effective += r.effective;
        if r.commitment_status == "Used" {
            g.covered_list += r.list;
            *used_fee.entry(k.clone()).or_default() += r.effective;
            *covered
                .entry(r.commitment_id.as_str())
                .or_default()
                .entry(k)
                .or_default() += r.list;
        }
    }
    for (id, u) in unused {
        let by = covered.get(id);
        let total: Amount = by.map(|m| m.values().copied().sum()).unwrap_or_default();
        if total <= Amount::ZERO {
            let g = groups
                .entry("(unallocated)".into())
                .or_insert_with(|| Group {
                    key: "(unallocated)".into(),
                    ..Group::default()
                });
            g.allocated_unused += u;
            continue;
        }
        // Shares of the unused in proportion to covered list; the last
        // group takes the rounding, so the parts add up exactly.
        let parts: Vec<(&String, &Amount)> = by.map(|m| m.iter().collect()).unwrap_or_default();
        let mut given = Amount::ZERO;
        for (i, (k, c)) in parts.iter().enumerate() {
            let share = if i + 1 == parts.len() {
                u - given
            } else {
                Amount(u.0 * c.0 / total.0)
            };
            given += share;
            if let Some(g) = groups.get_mut(*k) {
                g.allocated_unused += share;
            }
        }
    }
    let total: Amount = groups
        .values()
        .map(|g| g.effective + g.allocated_unused)
        .sum();
    let mut out: Vec<Group> = groups
        .into_values()
        .map(|mut g| {
            g.cost = g.effective + g.allocated_unused;
            let fee = used_fee.get(&g.key).copied().unwrap_or_default();
            g.commitment_savings = g.covered_list - fee - g.allocated_unused;
            g.savings = g.list - g.cost;
            g.share = if total > Amount::ZERO {
                g.cost.as_f64() / total.as_f64()
            } else {
                0.0
            };
            g
        })
        .collect();
    out.sort_by(|a, b| b.cost.cmp(&a.cost).then(a.key.cmp(&b.key)));
    out
}
