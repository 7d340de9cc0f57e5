//! Filter → score for one workload: which offerings and reserved pools can
//! take it, at what cost, and why the others cannot.
//!
//! The chain, in order (cheap and coarse first, so most offerings leave
//! early): accelerator (an index lookup: offerings are grouped by
//! accelerator class, so the rest are counted, not visited) → provider →
//! region → residency → compliance → latency → speed → price → hourly cap →
//! quota. Every rejection is counted under its reason constant.

use crate::context::Context;
use crate::reasons;
use serde::Serialize;
use skyward_model::{Pricing, SpotPolicy, Usd, Workload};
use std::collections::BTreeMap;

/// Options kept per workload after pruning.
pub const OPTIONS_PER_WORKLOAD_MAX: usize = 256;
/// Alternatives shown in an explanation.
pub const TOP_K: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Source {
    Offering(usize),
    Pool(usize),
}

/// One way to run a workload: where, on what, how paid, at what cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub source: Source,
    pub region: u32,
    pub provider: u32,
    /// Index of the accelerator alternative used.
    pub alternative: usize,
    pub pricing: Pricing,
    pub price_usd_per_node_hour: Usd,
    /// price × nodes × replicas.
    pub hourly_usd: Usd,
    /// Wall-clock hours after speed scaling and spot overhead.
    pub hours: f64,
    pub compute_usd: Usd,
    pub egress_usd: Usd,
    /// Provider billing the egress (the data's provider).
    pub egress_provider: u32,
    /// Coupling rows used: (row, amount).
    pub uses: Vec<(usize, u64)>,
}

impl Candidate {
    pub fn list_cost_usd(&self) -> Usd {
        self.compute_usd + self.egress_usd
    }
}

/// What filtering found, as data (rendered by the CLI, serialised as is).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filtering {
    pub offerings_evaluated: usize,
    /// Rejected offerings by reason, in chain order.
    pub offerings_filtered: BTreeMap<&'static str, usize>,
    pub pools_evaluated: usize,
    pub pools_filtered: BTreeMap<&'static str, usize>,
    /// Feasible options (offering × pricing, or pool) before pruning.
    pub options_feasible: usize,
    /// Options kept for the global assignment after dominance pruning.
    pub options_kept: usize,
    /// The accelerators counted under "no variant" (the workload's
    /// `variants:` cover not their stack).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_variant: Vec<String>,
}

pub struct WorkloadCandidates {
    pub options: Vec<Candidate>,
    pub filtering: Filtering,
    /// The cheapest feasible options by list cost, before pruning.
    pub top: Vec<Candidate>,
    pub truncated: bool,
}

fn allowed_region(entries: &[String], provider: &str, region: &str) -> bool {
    entries.is_empty()
        || entries.iter().any(|e| match e.split_once(':') {
            Some((p, r)) => p == provider && r == region,
            None => e == region,
        })
}

/// Hours on alternative `alt`, relative to the first (None: no figure).
/// For every kind: a training job finishes sooner on a faster accelerator,
/// and a serving replica on a slower one handles less traffic, so the same
/// load needs proportionally more replica-hours.
pub fn hours_factor(ctx: &Context, w: &Workload, alt: usize) -> Option<f64> {
    if alt == 0 {
        return Some(1.0);
    }
    let reference = w.accelerators.first()?;
    let this = w.accelerators.get(alt)?;
    if let (Some(r), Some(t)) = (
        w.throughput.get(&reference.name),
        w.throughput.get(&this.name),
    ) {
        return Some(r / t);
    }
    let acc = &ctx.catalog.accelerators;
    let r = acc.unit_tflops(&reference.name)? * f64::from(reference.count);
    let t = acc.unit_tflops(&this.name)? * f64::from(this.count);
    (t > 0.0).then(|| r / t)
}

/// Where alternative `alt`'s speed figure comes from, in words.
pub fn speed_source(ctx: &Context, w: &Workload, alt: usize) -> String {
    let (Some(reference), Some(this)) = (w.accelerators.first(), w.accelerators.get(alt)) else {
        return String::new();
    };
    if w.throughput.contains_key(&reference.name) && w.throughput.contains_key(&this.name) {
        return w
            .speed_sources
            .get(&this.name)
            .cloned()
            .unwrap_or_else(|| "the fleet file's throughput:".to_string());
    }
    match ctx.catalog.accelerators.unit_tflops(&this.name) {
        Some(t) => format!("datasheet: {t:.0} dense BF16 TFLOPS × {}", this.count),
        None => "no figure: not placed on it".to_string(),
    }
}

struct Chain<'c, 'a> {
    ctx: &'c Context<'a>,
    w: &'c Workload,
    nodes_total: u64,
    egress_gb: f64,
    spot_overhead: f64,
}

impl Chain<'_, '_> {
    /// Region-level checks shared by offerings and pools.
    fn region_checks(&self, region: u32, alt: usize) -> Result<(), &'static str> {
        let key = &self.ctx.regions[region as usize];
        let scope = self.w.alternative_scopes.get(alt);
        let provider_ok = |list: &[String]| list.is_empty() || list.contains(&key.provider);
        if !provider_ok(&self.w.providers) || !scope.is_none_or(|s| provider_ok(&s.providers)) {
            return Err(reasons::PROVIDER_NOT_ALLOWED);
        }
        if !allowed_region(&self.w.regions, &key.provider, &key.region)
            || !scope.is_none_or(|s| allowed_region(&s.regions, &key.provider, &key.region))
        {
            return Err(reasons::REGION_NOT_ALLOWED);
        }
        let info = &self.ctx.region_info[region as usize];
        if !self.w.residency.is_empty() && !self.w.residency.contains(&info.geography) {
            return Err(reasons::RESIDENCY);
        }
        if !self.w.compliance.iter().all(|c| info.has_certification(c)) {
            return Err(reasons::COMPLIANCE);
        }
        if let Some(bound) = self.w.latency_ms {
            if self
                .w
                .users
                .iter()
                .any(|u| self.ctx.rtt_ms(u, region) > bound)
            {
                return Err(reasons::LATENCY);
            }
        }
        Ok(())
    }

    fn egress(&self, region: u32) -> (Usd, u32) {
        match &self.w.data {
            Some(d) if self.egress_gb > 0.0 => {
                let rate = self.ctx.egress_usd_per_gb(&d.region, region);
                let usd = Usd::from_f64_rounded(rate * self.egress_gb).unwrap_or(Usd::ZERO);
                (
                    usd,
                    self.ctx
                        .provider_index
                        .get(&d.region.provider)
                        .copied()
                        .unwrap_or(0),
                )
            }
            _ => (Usd::ZERO, self.ctx.provider_of(region)),
        }
    }
}

/// Generates, filters and scores every option for workload `w`.
pub fn generate(ctx: &Context, w: &Workload) -> WorkloadCandidates {
    let chain = Chain {
        ctx,
        w,
        nodes_total: u64::from(w.nodes_total()),
        egress_gb: w.data.as_ref().map(|d| d.gb).unwrap_or(0.0),
        spot_overhead: 1.0 + ctx.fleet.settings.spot_overhead_pct / 100.0,
    };
    let mut f = Filtering {
        offerings_evaluated: ctx.catalog.offerings.len(),
        ..Filtering::default()
    };
    let mut all: Vec<Candidate> = Vec::with_capacity(128);
    let mut matched = 0usize;
    let mut seen_alts: Vec<(String, u32)> = Vec::new();
    for (alt, req) in w.accelerators.iter().enumerate() {
        let class = (req.name.to_ascii_lowercase(), req.count);
        if seen_alts.contains(&class) {
            continue;
        }
        seen_alts.push(class.clone());
        let Some(offerings) = ctx.by_accelerator.get(&class) else {
            continue;
        };
        matched += offerings.len();
        if w.no_variant
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&req.name))
        {
            *f.offerings_filtered.entry(reasons::NO_VARIANT).or_insert(0) += offerings.len();
            continue;
        }
        let factor = hours_factor(ctx, w, alt);
        // Region checks depend on the region and the alternative only:
        // made once per region here, not once per offering.
        let mut verdicts: Vec<Option<Result<(), &'static str>>> = vec![None; ctx.regions.len()];
        for &oi in offerings {
            let region = ctx.offering_region[oi];
            let verdict = match verdicts.get_mut(region as usize) {
                Some(Some(v)) => *v,
                Some(slot) => *slot.insert(chain.region_checks(region, alt)),
                None => chain.region_checks(region, alt),
            };
            if let Err(r) =
                verdict.and_then(|()| offering_options(&chain, oi, alt, factor, &mut all))
            {
                *f.offerings_filtered.entry(r).or_insert(0) += 1;
            }
        }
    }
    let wrong = f.offerings_evaluated.saturating_sub(matched);
    if wrong > 0 {
        f.offerings_filtered
            .insert(reasons::WRONG_ACCELERATOR, wrong);
    }
    f.pools_evaluated = ctx.fleet.capacity.len();
    for pi in 0..ctx.fleet.capacity.len() {
        if let Err(r) = pool_option(&chain, pi, &mut all) {
            *f.pools_filtered.entry(r).or_insert(0) += 1;
        }
    }
    if f.offerings_filtered.contains_key(reasons::NO_VARIANT)
        || f.pools_filtered.contains_key(reasons::NO_VARIANT)
    {
        f.no_variant = w.no_variant.clone();
    }
    f.options_feasible = all.len();
    all.sort_by_cached_key(order_key);
    let top = all.iter().take(TOP_K).cloned().collect();
    let (options, truncated) = prune(all);
    f.options_kept = options.len();
    WorkloadCandidates {
        options,
        filtering: f,
        top,
        truncated,
    }
}

/// Deterministic order: list cost, then region, then the offering or pool
/// (catalog and fleet orders are fixed), then pricing.
fn order_key(c: &Candidate) -> (Usd, u32, Source, Pricing) {
    (c.list_cost_usd(), c.region, c.source, c.pricing)
}

/// Options of catalog offering `oi` for alternative `alt`; the caller has
/// already passed its region's checks (`Chain::region_checks`).
fn offering_options(
    chain: &Chain,
    oi: usize,
    alt: usize,
    factor: Option<f64>,
    out: &mut Vec<Candidate>,
) -> Result<(), &'static str> {
    let ctx = chain.ctx;
    let w = chain.w;
    let o = &ctx.catalog.offerings[oi];
    let region = ctx.offering_region[oi];
    let factor = factor.ok_or(reasons::NO_SPEED)?;
    let mut pricings: Vec<(Pricing, Usd)> = Vec::with_capacity(2);
    if w.spot != SpotPolicy::Required {
        if let Some(p) = o.on_demand_usd_per_hour {
            pricings.push((Pricing::OnDemand, p));
        }
    }
    if w.spot != SpotPolicy::Never {
        if let Some(p) = o.spot_usd_per_hour {
            pricings.push((Pricing::Spot, p));
        }
    }
    if pricings.is_empty() {
        return Err(reasons::NO_PRICE);
    }
    let nodes = chain.nodes_total;
    let before = pricings.len();
    if let Some(cap) = w.max_hourly_usd {
        pricings.retain(|(_, p)| p.times_int(nodes as i64) <= cap);
    }
    if pricings.is_empty() && before > 0 {
        return Err(reasons::OVER_HOURLY_CAP);
    }
    let provider = ctx.provider_of(region);
    let accels = nodes * u64::from(o.accelerator_count);
    let uses: Vec<(usize, u64)> = ctx
        .quota_rows_of(oi)
        .iter()
        .map(|&row| (row, accels))
        .collect();
    if uses
        .iter()
        .any(|(row, amount)| *amount > ctx.rows[*row].limit)
    {
        return Err(reasons::OVER_QUOTA);
    }
    let (egress_usd, egress_provider) = chain.egress(region);
    for (pricing, price) in pricings {
        let overhead = if pricing == Pricing::Spot {
            chain.spot_overhead
        } else {
            1.0
        };
        let hours = w.hours * factor * overhead;
        out.push(Candidate {
            source: Source::Offering(oi),
            region,
            provider,
            alternative: alt,
            pricing,
            price_usd_per_node_hour: price,
            hourly_usd: price.times_int(nodes as i64),
            hours,
            compute_usd: price.times(nodes as f64 * hours),
            egress_usd,
            egress_provider,
            uses: uses.clone(),
        });
    }
    Ok(())
}

fn pool_option(chain: &Chain, pi: usize, out: &mut Vec<Candidate>) -> Result<(), &'static str> {
    let ctx = chain.ctx;
    let w = chain.w;
    let pool = &ctx.fleet.capacity[pi];
    let alt = w
        .accelerators
        .iter()
        .position(|a| {
            a.name.eq_ignore_ascii_case(&pool.accelerator.name) && a.count == pool.accelerator.count
        })
        .ok_or(reasons::WRONG_ACCELERATOR)?;
    let region = ctx
        .region_index
        .get(&pool.region)
        .copied()
        .ok_or(reasons::REGION_NOT_ALLOWED)?;
    if w.no_variant
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&w.accelerators[alt].name))
    {
        return Err(reasons::NO_VARIANT);
    }
    chain.region_checks(region, alt)?;
    let factor = hours_factor(ctx, w, alt).ok_or(reasons::NO_SPEED)?;
    if w.spot == SpotPolicy::Required {
        return Err(reasons::SPOT_REQUIRED);
    }
    if chain.nodes_total > u64::from(pool.nodes) {
        return Err(reasons::POOL_TOO_SMALL);
    }
    let (egress_usd, egress_provider) = chain.egress(region);
    out.push(Candidate {
        source: Source::Pool(pi),
        region,
        provider: ctx.provider_of(region),
        alternative: alt,
        pricing: Pricing::Reserved,
        price_usd_per_node_hour: Usd::ZERO,
        hourly_usd: Usd::ZERO,
        hours: w.hours * factor,
        compute_usd: Usd::ZERO,
        egress_usd,
        egress_provider,
        uses: vec![(ctx.pool_row(pi), chain.nodes_total)],
    });
    Ok(())
}

/// Keeps, among options that touch the same providers and coupling rows in
/// the same amounts, only those not dominated in (compute spend, egress
/// spend). Exact: a dominated option is never needed by an optimal plan,
/// because the objective is non-decreasing in every provider's spend and
/// the dominated option uses the same rows. `all` must be sorted by list
/// cost; the survivors keep that order.
fn prune(all: Vec<Candidate>) -> (Vec<Candidate>, bool) {
    // Keyed by borrowed row use: no allocation per option.
    type Key<'c> = (u32, u32, &'c [(usize, u64)]);
    let mut groups: std::collections::HashMap<Key, Vec<usize>> = std::collections::HashMap::new();
    let mut keep = vec![false; all.len()];
    for (i, c) in all.iter().enumerate() {
        let egress_provider = if c.egress_usd == Usd::ZERO {
            c.provider
        } else {
            c.egress_provider
        };
        let group = groups
            .entry((c.provider, egress_provider, c.uses.as_slice()))
            .or_default();
        let same_provider = egress_provider == c.provider;
        let dominated = group.iter().any(|&j| {
            let d = &all[j];
            if same_provider {
                d.list_cost_usd() <= c.list_cost_usd()
            } else {
                d.compute_usd <= c.compute_usd && d.egress_usd <= c.egress_usd
            }
        });
        if !dominated {
            group.push(i);
            keep[i] = true;
        }
    }
    drop(groups);
    let mut out: Vec<Candidate> = all
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect();
    let truncated = out.len() > OPTIONS_PER_WORKLOAD_MAX;
    out.truncate(OPTIONS_PER_WORKLOAD_MAX);
    // The collect above reuses `all`'s buffer (sized for every feasible
    // option, ~30 times the survivors): kept per workload, that was 15 KB
    // each, 1.5 GB at 100,000 workloads.
    out.shrink_to_fit();
    (out, truncated)
}
