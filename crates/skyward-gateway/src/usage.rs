//! Per-request usage: written as JSON lines (one record per request) and
//! turned into FOCUS 1.3 rows for `skyward ledger import`: one row per
//! hour × tenant × deployment × token kind, priced at the deployment's
//! price per million tokens; committed capacity is written as
//! commitment-discounted usage, like reserved compute in the ledger.

use serde::{Deserialize, Serialize};
use skyward_ledger::time::Timestamp;
use skyward_ledger::Amount;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UsageRecord {
    pub unix_s: i64,
    pub tenant: String,
    /// The gateway key's name (never the key), for budgets across restarts.
    #[serde(default)]
    pub key: Option<String>,
    pub model: String,
    pub deployment: String,
    pub provider: String,
    pub region: String,
    /// committed | payg
    pub capacity: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Counted from the stream (no `usage` from the upstream).
    pub estimated: bool,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cost_usd: f64,
    pub status: u16,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub attempts: u32,
}

/// (hour, provider, region, deployment, tenant, kind, price, capacity).
type BucketKey = (
    i64,
    String,
    String,
    String,
    String,
    &'static str,
    String,
    String,
);

/// Dollars per (key name, month).
pub type SpentByMonth = BTreeMap<(String, i64), f64>;

/// A month as a number: `year × 12 + month − 1` (UTC).
pub fn month_of(unix_s: i64) -> i64 {
    let (y, m, _) = skyward_ledger::time::civil_from_days(
        unix_s.div_euclid(skyward_ledger::time::SECONDS_PER_DAY),
    );
    y * 12 + i64::from(m) - 1
}

/// Spend per key name and month ([`month_of`]) in a usage log (budgets
/// survive restarts; monthly ones count only their month). Lines that do
/// not parse are counted and skipped.
pub fn spent_by_key(path: &std::path::Path) -> std::io::Result<(SpentByMonth, u64)> {
    use std::io::BufRead;
    let mut out = BTreeMap::new();
    let mut bad = 0;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((out, 0)),
        Err(e) => return Err(e),
    };
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<UsageRecord>(&line) {
            Ok(r) => {
                if let Some(k) = r.key {
                    *out.entry((k, month_of(r.unix_s))).or_insert(0.0) += r.cost_usd;
                }
            }
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

/// FOCUS rows from usage records (hourly buckets).
pub fn write_focus<W: Write>(mut w: W, records: &[UsageRecord]) -> std::io::Result<u64> {
    writeln!(w, "{}", skyward_ledger::export::HEADER)?;
    let mut buckets: BTreeMap<BucketKey, u64> = BTreeMap::new();
    for r in records {
        let hour = r.unix_s.div_euclid(3600) * 3600;
        for (kind, tokens, price) in [
            ("input", r.prompt_tokens, r.input_usd_per_mtok),
            ("output", r.completion_tokens, r.output_usd_per_mtok),
        ] {
            if tokens == 0 {
                continue;
            }
            *buckets
                .entry((
                    hour,
                    r.provider.clone(),
                    r.region.clone(),
                    r.deployment.clone(),
                    r.tenant.clone(),
                    kind,
                    format!("{price}"),
                    r.capacity.clone(),
                ))
                .or_insert(0) += tokens;
        }
    }
    let mut rows = 0;
    for ((hour, provider, region, deployment, tenant, kind, price, capacity), tokens) in buckets {
        let t0 = Timestamp(hour);
        let t1 = Timestamp(hour + 3600);
        let (ps, pe) = t0.month_bounds();
        let price_f: f64 = price.parse().unwrap_or(0.0);
        let qty = Amount::from_usd_f64(tokens as f64 / 1e6);
        let unit = Amount::from_usd_f64(price_f);
        let list = Amount(unit.0 * qty.0 / skyward_ledger::amount::PICOS_PER_USD);
        let committed = capacity == "committed";
        let billed = if committed { Amount::ZERO } else { list };
        let (category, commitment, status) = if committed {
            ("Committed", deployment.as_str(), "Used")
        } else {
            ("Standard", "", "")
        };
        let res = format!("{deployment}/{tenant}").replace(',', " ");
        writeln!(
            w,
            "skyward-gateway,USD,{ps},{pe},{t0},{t1},Usage,,{kind} tokens of {res},Usage-Based,{category},{provider},{provider},{region},AI and Machine Learning,Inference,{deployment}-{kind}-tokens,{res},{res},{lup},{q},1M Tokens,{l},{b},{b},{b},{q},1M Tokens,{commitment},{status}",
            lup = unit.decimal(),
            q = qty.decimal(),
            l = list.decimal(),
            b = billed.decimal(),
        )?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::month_of;

    #[test]
    fn months_turn_at_utc_midnight_by_hand() {
        for (unix_s, (y, m)) in [
            (0, (1970, 1)),
            (-1, (1969, 12)),
            (1_709_251_199, (2024, 2)),  // 2024-02-29T23:59:59Z
            (1_709_251_200, (2024, 3)),  // 2024-03-01T00:00:00Z
            (1_796_083_199, (2026, 11)), // 2026-11-30T23:59:59Z
            (1_796_083_200, (2026, 12)), // 2026-12-01T00:00:00Z
        ] {
            assert_eq!(month_of(unix_s), y * 12 + m - 1, "{unix_s}");
        }
    }
}
