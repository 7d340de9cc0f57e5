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
use crate::time::{civil_from_days, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    pub billed: Amount,
    pub effective: Amount,
    pub list: Amount,
    pub contracted: Amount,
    pub rows: u64,
}

impl Sums {
    fn add(&mut self, c: &Charge) {
        self.billed += c.billed_cost;
        self.effective += c.effective_cost;
        self.list += c.list_cost.unwrap_or(c.billed_cost);
        self.contracted += c.contracted_cost.unwrap_or(c.billed_cost);
        self.rows += 1;
    }
}

/// Upper bound on buckets held while folding one import.
pub const BUCKETS_MAX: usize = 20_000_000;

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

pub fn partition_of(c: &Charge) -> String {
    let start = c.billing_period_start.unwrap_or_else(|| {
        let (y, m, _) = civil_from_days(c.charge_period_start.day());
        Timestamp::from_ymd(y, m, 1)
    });
    format!("{}|{}", canonical_provider(&c.provider), start.date_string())
}

impl Aggregates {
    pub fn add(&mut self, c: &Charge) {
        let partition = partition_of(c);
        let status = match c.commitment_status {
            Some(CommitmentStatus::Used) => "Used",
            Some(CommitmentStatus::Unused) => "Unused",
            None => "",
        };
        let key = DailyKey {
            partition: partition.clone(),
            day: c.charge_period_start.day(),
            provider: canonical_provider(&c.provider),
            billing_account: c.billing_account.clone(),
            region: c.region.clone().unwrap_or_default(),
            service: c.service.clone().unwrap_or_default(),
            sku: c.sku.clone().unwrap_or_default(),
            category: c.category.as_str().to_string(),
            pricing_category: c.pricing_category.clone().unwrap_or_default(),
            commitment_id: c.commitment_id.clone().unwrap_or_default(),
            commitment_status: status.to_string(),
        };
        self.daily.entry(key).or_default().add(c);
        if c.category == crate::focus::ChargeCategory::Usage {
            let hk = HourlyKey {
                partition,
                hour: c.charge_period_start.hour(),
                provider: canonical_provider(&c.provider),
                pricing_category: c.pricing_category.clone().unwrap_or_default(),
            };
            self.hourly.entry(hk).or_default().add(c);
        }
        self.rows += 1;
        self.first = Some(self.first.map_or(c.charge_period_start, |f| f.min(c.charge_period_start)));
        self.last = Some(self.last.map_or(c.charge_period_end, |l| l.max(c.charge_period_end)));
    }

    pub fn partitions(&self) -> BTreeSet<String> {
        self.daily.keys().map(|k| k.partition.clone()).collect()
    }

    pub fn bucket_count(&self) -> usize {
        self.daily.len() + self.hourly.len()
    }

    /// Σ of a field over all daily buckets (exact).
    pub fn total(&self, f: impl Fn(&Sums) -> Amount) -> Amount {
        self.daily.values().map(f).sum()
    }
}
