//! Imported charges, folded into the buckets the ledger reads: daily totals
//! per (provider, account, region, service, SKU, category, pricing,
//! commitment) and hourly usage per (provider, pricing category) for
//! hourly-commitment analysis. A year of hourly rows for a fleet (millions)
//! folds into a few hundred thousand buckets, so status reads stay fast.
//!
//! Every charge is spread evenly over its charge period, in proportion to
//! the seconds that fall in each day (daily buckets) and each hour (hourly
//! usage buckets): an Azure daily row becomes 24 equal hours, a monthly row
//! equal days. One-time charges (an upfront purchase) stay where they
//! start. The pieces of one amount add up to it exactly.
//!
//! Each bucket belongs to a partition: provider × billing account ×
//! billing period (or the charge's month when the file has no billing
//! period), the unit an import may replace. For each partition the folder
//! also keeps row fingerprints (all of them for small files, one in
//! [`FINGERPRINT_SAMPLE`] for large ones), so the store can tell another
//! part of a multi-part export (new rows) from a re-export (rows it has).

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
    /// Canonical FOCUS Tags JSON ("" without tags).
    pub tags: String,
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
    /// Source rows whose charge period starts in this bucket.
    pub rows: u64,
    /// Pieces of rows longer than the bucket (an hourly bucket filled from
    /// a daily row): the figures here are an even spread, not a reading.
    /// Kept in memory only; the store keeps per-partition counts of such
    /// rows (`Fingerprints::spread_usage_rows`) for status's note.
    pub spread_rows: u64,
}

/// The share `lo..hi` (of `den`) of an amount, such that consecutive shares
/// add up to the amount exactly.
fn share(a: Amount, lo: i64, hi: i64, den: i64) -> Amount {
    if den <= 0 {
        return a;
    }
    let (lo, hi, den) = (i128::from(lo), i128::from(hi), i128::from(den));
    Amount(a.0 * hi / den - a.0 * lo / den)
}

impl Sums {
    /// Adds the part of `c` that falls in seconds `lo..hi` of its `den`
    /// seconds; `first` for the piece where the row starts.
    fn add_part(&mut self, c: &Charge, lo: i64, hi: i64, den: i64, first: bool, spread: bool) {
        // The whole charge in one bucket (almost every row): no division.
        let whole = lo == 0 && hi == den;
        let part = |a: Amount| if whole { a } else { share(a, lo, hi, den) };
        self.billed += part(c.billed_cost);
        self.effective += part(c.effective_cost);
        self.list += part(c.list_cost.unwrap_or(c.billed_cost));
        self.contracted += part(c.contracted_cost.unwrap_or(c.billed_cost));
        self.quantity += part(
            c.pricing_quantity
                .or(c.consumed_quantity)
                .unwrap_or(Amount::ZERO),
        );
        self.rows += u64::from(first);
        self.spread_rows += u64::from(spread);
    }
}

/// Calls `each(bucket, lo, hi, den)` for every bucket of `width` seconds
/// that `[start, end)` overlaps, with the overlap as seconds `lo..hi` of
/// the `den` seconds of the period. A zero-length period is one piece.
fn pieces(start: i64, end: i64, width: i64, mut each: impl FnMut(i64, i64, i64, i64)) {
    let den = end - start;
    if den <= 0 {
        each(start.div_euclid(width), 0, 1, 1);
        return;
    }
    let mut t = start;
    while t < end {
        let b = t.div_euclid(width);
        let next = ((b + 1) * width).min(end);
        each(b, t - start, next - start, den);
        t = next;
    }
}

/// One fingerprint in this many is kept for a partition with more than
/// [`FINGERPRINT_ALL_MAX`] rows in a file.
pub const FINGERPRINT_SAMPLE: u64 = 32;
/// Partitions with up to this many rows in a file keep every fingerprint.
pub const FINGERPRINT_ALL_MAX: u64 = 4_096;

/// A stable 64-bit fingerprint of a charge's content (its fields, eight
/// bytes at a time through a multiply-xorshift mix; the line number is not
/// part of it). Stored, so it must not change between versions.
pub fn fingerprint(c: &Charge) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut mix = |w: u64| {
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    };
    let mut eat = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(8);
        for ch in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(ch);
            mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length ends each field, so "ab","c" ≠ "a","bc".
        mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56) ^ 0x1f);
    };
    eat(c.provider.as_bytes());
    eat(c.billing_account.as_bytes());
    eat(&c.charge_period_start.0.to_le_bytes());
    eat(&c.charge_period_end.0.to_le_bytes());
    eat(c.category.as_str().as_bytes());
    for o in [
        &c.frequency,
        &c.pricing_category,
        &c.region,
        &c.service,
        &c.sku,
        &c.resource_id,
        &c.commitment_id,
        &c.tags,
    ] {
        match o {
            Some(v) => eat(v.as_bytes()),
            None => eat(&[0xff, 0xfe]),
        }
    }
    for a in [
        Some(c.billed_cost),
        Some(c.effective_cost),
        c.list_cost,
        c.contracted_cost,
        c.pricing_quantity,
        c.consumed_quantity,
    ] {
        match a {
            Some(x) => eat(&x.0.to_le_bytes()),
            None => eat(&[0xff, 0xfe]),
        }
    }
    eat(match c.commitment_status {
        Some(CommitmentStatus::Used) => b"Used",
        Some(CommitmentStatus::Unused) => b"Unused",
        None => b"",
    });
    h ^ (h >> 32)
}

/// Row fingerprints of one partition in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints {
    pub rows: u64,
    /// Usage rows, and those longer than an hour (spread over hours).
    pub usage_rows: u64,
    pub spread_usage_rows: u64,
    /// True once only one in [`FINGERPRINT_SAMPLE`] is kept.
    pub sampled: bool,
    pub hashes: Vec<u64>,
}

impl Fingerprints {
    fn add(&mut self, h: u64) {
        self.rows += 1;
        if !self.sampled && self.rows > FINGERPRINT_ALL_MAX {
            self.sampled = true;
            self.hashes.retain(|x| x.is_multiple_of(FINGERPRINT_SAMPLE));
        }
        if !self.sampled || h.is_multiple_of(FINGERPRINT_SAMPLE) {
            self.hashes.push(h);
        }
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
    names: HashMap<String, u32, Fast>,
    daily: HashMap<(i64, [u32; 11]), Sums, Fast>,
    hourly: HashMap<(i64, [u32; 5]), Sums, Fast>,
    rows: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    /// (raw provider name, account, period start day) → (provider id,
    /// partition id) of recent rows: a few partitions interleave (accounts
    /// alternate row by row in some exports), so several are kept.
    recent: Vec<(String, String, i64, u32, u32)>,
    fingerprints: HashMap<u32, Fingerprints, Fast>,
}

/// Partitions remembered across rows.
const RECENT_PARTITIONS_MAX: usize = 16;

/// A fast, non-cryptographic hasher for the folder's own maps (keys are
/// the input's strings and small integers; hash order never leaves the
/// module). Multiply-rotate over eight-byte words.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for ch in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(ch);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type Fast = std::hash::BuildHasherDefault<FastHasher>;

/// Charge periods longer than this are refused by the FOCUS reader for
/// rows that are spread (bounds the pieces of one row).
pub const SPREAD_DAYS_MAX: i64 = 366;

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
        if let Some((_, _, _, p, part)) = self.recent.iter().find(|(name, account, day, _, _)| {
            *day == period && *name == c.provider && *account == c.billing_account
        }) {
            return (*p, *part);
        }
        let provider = canonical_provider(&c.provider);
        let partition = partition_key(&provider, c);
        let ids = (self.id(&provider), self.id(&partition));
        if self.recent.len() >= RECENT_PARTITIONS_MAX {
            self.recent.remove(0);
        }
        self.recent.push((
            c.provider.clone(),
            c.billing_account.clone(),
            period,
            ids.0,
            ids.1,
        ));
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
            self.id(c.tags.as_deref().unwrap_or("")),
        ];
        let one_time = c
            .frequency
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("One-Time"));
        let (t0, t1) = if one_time {
            (c.charge_period_start.0, c.charge_period_start.0)
        } else {
            (c.charge_period_start.0, c.charge_period_end.0)
        };
        let daily = &mut self.daily;
        pieces(t0, t1, crate::time::SECONDS_PER_DAY, |day, lo, hi, den| {
            daily
                .entry((day, key))
                .or_default()
                .add_part(c, lo, hi, den, lo == 0, false);
        });
        if c.category == crate::focus::ChargeCategory::Usage {
            let hk = [key[0], key[1], key[7], key[3], key[5]];
            let hourly = &mut self.hourly;
            let spread = t1 - t0 > crate::time::SECONDS_PER_HOUR;
            pieces(
                t0,
                t1,
                crate::time::SECONDS_PER_HOUR,
                |hour, lo, hi, den| {
                    hourly
                        .entry((hour, hk))
                        .or_default()
                        .add_part(c, lo, hi, den, lo == 0, spread);
                },
            );
        }
        let f = self.fingerprints.entry(partition_id).or_default();
        f.add(fingerprint(c));
        if c.category == crate::focus::ChargeCategory::Usage {
            f.usage_rows += 1;
            f.spread_usage_rows += u64::from(t1 - t0 > crate::time::SECONDS_PER_HOUR);
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
                        tags: n(k[10]),
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
        let fingerprints = self
            .fingerprints
            .into_iter()
            .map(|(p, f)| (n(p), f))
            .collect();
        Aggregates {
            daily,
            hourly,
            fingerprints,
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
    /// Row fingerprints per partition.
    pub fingerprints: BTreeMap<String, Fingerprints>,
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
    format!(
        "{provider}|{}|{}",
        c.billing_account,
        period_start(c).date_string()
    )
}

/// A partition key for people: "aws account 1234 billing period 2026-03-01".
pub fn describe_partition(p: &str) -> String {
    let mut it = p.splitn(3, '|');
    match (it.next(), it.next(), it.next()) {
        (Some(provider), Some(account), Some(period)) => {
            let account = if account.is_empty() {
                "(none)"
            } else {
                account
            };
            format!("{provider} account {account} billing period {period}")
        }
        _ => p.replace('|', " billing period "),
    }
}

impl Aggregates {
    pub fn partitions(&self) -> BTreeSet<String> {
        self.daily.keys().map(|k| k.partition.clone()).collect()
    }

    pub fn bucket_count(&self) -> usize {
        self.daily.len() + self.hourly.len()
    }
}
