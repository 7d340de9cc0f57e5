//! Imported charges, folded into the buckets the ledger reads: daily totals
//! per (provider, account, region, service, SKU, category, pricing,
//! commitment) and hourly usage per (provider, pricing category) for
//! hourly-commitment analysis. A year of hourly rows for a fleet (millions)
//! folds into a few hundred thousand buckets, so status reads stay fast.
//!
//! Charges are bucketed by the start of their charge period (an upfront
//! purchase counts on the day it is paid). Each bucket belongs to a
//! partition: provider × billing period (or the charge's month when the
//! file has no billing period), the unit an import may replace.

use crate::amount::Amount;
use crate::focus::{Charge, CommitmentStatus};
use crate::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DailyKey {
    pub partition: String,
    pub day: i64,
    pub provider: String,
    pub billing_account: String,
    pub region: String,
    pub service: String,
    pub sku: String,
    pub category: String,
    pub pricing_category: String,
    pub commitment_id: String,
    pub commitment_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourlyKey {
    pub partition: String,
    pub hour: i64,
    pub provider: String,
    pub pricing_category: String,
    pub region: String,
    pub sku: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    pub billed: Amount,
    pub effective: Amount,
    pub list: Amount,
    pub contracted: Amount,
    /// Σ PricingQuantity (else ConsumedQuantity): instance-hours for compute.
    pub quantity: Amount,
    pub rows: u64,
}

impl Sums {
    fn add(&mut self, c: &Charge) {
        self.billed += c.billed_cost;
        self.effective += c.effective_cost;
        self.list += c.list_cost.unwrap_or(c.billed_cost);
        self.contracted += c.contracted_cost.unwrap_or(c.billed_cost);
        self.quantity += c
            .pricing_quantity
            .or(c.consumed_quantity)
            .unwrap_or(Amount::ZERO);
        self.rows += 1;
    }
}

/// Upper bound on buckets held while folding one import.
pub const BUCKETS_MAX: usize = 20_000_000;

/// Folds charges into buckets. While folding, key strings are interned to
/// small integers and buckets live in hash maps (no allocation per row);
/// [`Folder::finish`] sorts them into ordered maps, so nothing that leaves
/// this module depends on hash order.
#[derive(Debug, Default)]
pub struct Folder {
    names: HashMap<String, u32>,
    daily: HashMap<(i64, [u32; 10]), Sums>,
    hourly: HashMap<(i64, [u32; 5]), Sums>,
    rows: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    /// (raw provider name, period start day) → (provider id, partition id)
    /// of the previous row: consecutive rows almost always share them.
    recent: Option<(String, i64, u32, u32)>,
}

impl Folder {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.names.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.insert(s.to_string(), i);
        i
    }

    fn provider_and_partition(&mut self, c: &Charge) -> (u32, u32) {
        let period = period_start(c).day();
        if let Some((name, day, p, part)) = &self.recent {
            if *day == period && *name == c.provider {
                return (*p, *part);
            }
        }
        let provider = canonical_provider(&c.provider);
        let partition = partition_key(&provider, c);
        let ids = (self.id(&provider), self.id(&partition));
        self.recent = Some((c.provider.clone(), period, ids.0, ids.1));
        ids
    }

    pub fn add(&mut self, c: &Charge) {
        let (provider_id, partition_id) = self.provider_and_partition(c);
        let status = match c.commitment_status {
            Some(CommitmentStatus::Used) => "Used",
            Some(CommitmentStatus::Unused) => "Unused",
            None => "",
        };
        let key = [
            partition_id,
            provider_id,
            self.id(&c.billing_account),
            self.id(c.region.as_deref().unwrap_or("")),
            self.id(c.service.as_deref().unwrap_or("")),
            self.id(c.sku.as_deref().unwrap_or("")),
            self.id(c.category.as_str()),
            self.id(c.pricing_category.as_deref().unwrap_or("")),
            self.id(c.commitment_id.as_deref().unwrap_or("")),
            self.id(status),
        ];
        self.daily
            .entry((c.charge_period_start.day(), key))
            .or_default()
            .add(c);
        if c.category == crate::focus::ChargeCategory::Usage {
            let hk = [key[0], key[1], key[7], key[3], key[5]];
            self.hourly
                .entry((c.charge_period_start.hour(), hk))
                .or_default()
                .add(c);
        }
        self.rows += 1;
        self.first = Some(
            self.first
                .map_or(c.charge_period_start, |f| f.min(c.charge_period_start)),
        );
        self.last = Some(
            self.last
                .map_or(c.charge_period_end, |l| l.max(c.charge_period_end)),
        );
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn bucket_count(&self) -> usize {
        self.daily.len() + self.hourly.len()
    }

    pub fn finish(self) -> Aggregates {
        let mut names = vec![String::new(); self.names.len()];
        for (s, i) in self.names {
            names[i as usize] = s;
        }
        let n = |i: u32| names[i as usize].clone();
        let daily = self
            .daily
            .into_iter()
            .map(|((day, k), v)| {
                (
                    DailyKey {
                        partition: n(k[0]),
                        day,
                        provider: n(k[1]),
                        billing_account: n(k[2]),
                        region: n(k[3]),
                        service: n(k[4]),
                        sku: n(k[5]),
                        category: n(k[6]),
                        pricing_category: n(k[7]),
                        commitment_id: n(k[8]),
                        commitment_status: n(k[9]),
                    },
                    v,
                )
            })
            .collect();
        let hourly = self
            .hourly
            .into_iter()
            .map(|((hour, k), v)| {
                (
                    HourlyKey {
                        partition: n(k[0]),
                        hour,
                        provider: n(k[1]),
                        pricing_category: n(k[2]),
                        region: n(k[3]),
                        sku: n(k[4]),
                    },
                    v,
                )
            })
            .collect();
        Aggregates {
            daily,
            hourly,
            rows: self.rows,
            first: self.first,
            last: self.last,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Aggregates {
    pub daily: BTreeMap<DailyKey, Sums>,
    pub hourly: BTreeMap<HourlyKey, Sums>,
    pub rows: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

/// Skyward's provider id for a FOCUS provider name ("AWS" → aws,
/// "Microsoft" → azure, "Google Cloud" → gcp, "Oracle" → oci); other names
/// are lower-cased as they are.
pub fn canonical_provider(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    let id = match n.as_str() {
        "aws" | "amazon web services" | "amazon web services, inc." | "amazon" => "aws",
        "microsoft" | "azure" | "microsoft azure" | "microsoft corporation" => "azure",
        "google cloud" | "google" | "gcp" | "google cloud platform" => "gcp",
        "oracle" | "oci" | "oracle cloud infrastructure" => "oci",
        "lambda" | "lambda labs" | "lambda cloud" => "lambda",
        _ => return n,
    };
    id.to_string()
}

fn period_start(c: &Charge) -> Timestamp {
    c.billing_period_start
        .unwrap_or_else(|| c.charge_period_start.month_start())
}

fn partition_key(provider: &str, c: &Charge) -> String {
    format!("{provider}|{}", period_start(c).date_string())
}

impl Aggregates {
    pub fn partitions(&self) -> BTreeSet<String> {
        self.daily.keys().map(|k| k.partition.clone()).collect()
    }

    pub fn bucket_count(&self) -> usize {
        self.daily.len() + self.hourly.len()
    }
}
