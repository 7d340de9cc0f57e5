//! The scenario file of `skyward simulate`: sites, demand, faults,
//! contracts (the contracts file's format) and policies, validated into
//! `skyward_sim::Scenario`. See `examples/scenario.yaml`.

use crate::contracts::RawContract;
use crate::error::SpecError;
use crate::fleet::OneOrMany;
use crate::locate::{line_of, line_of_key};
use serde::Deserialize;
use skyward_catalog::accelerators::AcceleratorTable;
use skyward_core::JobSpec;
use skyward_ledger::Timestamp;
use skyward_model::{AcceleratorRequest, RegionKey, SpotPolicy, Usd};
use skyward_sim::scenario::{
    Dist, Fault, Kind, Options, Policy, Scenario, Scope, SiteModel, Stream, Trace, When,
    FAULTS_MAX, HOURLY_CONTRACTS_MAX, MS_PER_DAY, MS_PER_HOUR, OUTAGES_MAX, SITES_MAX, STREAMS_MAX,
    YEARS_MAX,
};
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    start: String,
    years: u32,
    #[serde(default)]
    options: Option<RawOptions>,
    #[serde(default)]
    policies: Option<Vec<String>>,
    sites: Vec<RawSite>,
    demand: Vec<RawStream>,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    contracts: Vec<RawContract>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default)]
    cycle_min_gap_s: Option<f64>,
    #[serde(default)]
    detection_s: Option<f64>,
    #[serde(default)]
    commitments_refresh_days: Option<f64>,
    #[serde(default)]
    walltime_step_pct: Option<f64>,
    #[serde(default)]
    workloads_max: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    provider: String,
    region: String,
    accelerator: String,
    accelerators: u32,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    capacity: Vec<RawCapacityStep>,
    price_usd_per_accelerator_hour: f64,
    #[serde(default)]
    price_change_pct_per_year: Option<f64>,
    #[serde(default)]
    price_steps: Vec<RawPriceStep>,
    #[serde(default)]
    spot: bool,
    #[serde(default)]
    preemptions_per_hour: Option<f64>,
    #[serde(default)]
    prepaid: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacityStep {
    from: String,
    accelerators: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceStep {
    from: String,
    usd_per_accelerator_hour: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: String,
    kind: Kind,
    #[serde(default)]
    arrivals_per_hour: Option<f64>,
    #[serde(default)]
    every_hours: Option<f64>,
    #[serde(default)]
    growth_pct_per_year: Option<f64>,
    #[serde(default)]
    daily_amplitude_pct: Option<f64>,
    #[serde(default)]
    weekly_amplitude_pct: Option<f64>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    until: Option<String>,
    accelerators: OneOrMany,
    #[serde(default)]
    nodes: Option<u32>,
    #[serde(default)]
    hours: Option<RawDist>,
    #[serde(default)]
    trace: Option<RawTrace>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    providers: Option<OneOrMany>,
    #[serde(default)]
    regions: Option<OneOrMany>,
    #[serde(default)]
    residency: Option<OneOrMany>,
    #[serde(default)]
    compliance: Option<OneOrMany>,
    #[serde(default)]
    spot: Option<SpotPolicy>,
    #[serde(default)]
    checkpoint_every_hours: Option<f64>,
    #[serde(default)]
    slo_start_minutes: Option<f64>,
    #[serde(default)]
    preemptible: bool,
    #[serde(default)]
    team: Option<String>,
}

/// `hours: 24`, or `hours: {dist: exponential, mean: 2}` (also
/// `uniform` with min and max, `lognormal` with median and sigma).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDist {
    Fixed(f64),
    Dist(RawDistMap),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDistMap {
    dist: String,
    #[serde(default)]
    mean: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    median: Option<f64>,
    #[serde(default)]
    sigma: Option<f64>,
}

impl RawDistMap {
    fn into_dist(self) -> Result<Dist, String> {
        let RawDistMap {
            dist,
            mean,
            min,
            max,
            median,
            sigma,
        } = self;
        match (dist.as_str(), mean, min, max, median, sigma) {
            ("exponential", Some(mean_hours), None, None, None, None) => {
                Ok(Dist::Exponential { mean_hours })
            }
            ("uniform", None, Some(min_hours), Some(max_hours), None, None) => Ok(Dist::Uniform {
                min_hours,
                max_hours,
            }),
            ("lognormal", None, None, None, Some(median_hours), Some(sigma)) => {
                Ok(Dist::LogNormal {
                    median_hours,
                    sigma,
                })
            }
            ("exponential" | "uniform" | "lognormal", ..) => Err(format!(
                "{dist} takes {}",
                match dist.as_str() {
                    "exponential" => "mean",
                    "uniform" => "min and max",
                    _ => "median and sigma",
                }
            )),
            _ => Err(format!(
                "unknown dist '{dist}': a number of hours, or exponential, uniform, lognormal"
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    #[serde(default)]
    site: Option<String>,
    /// `provider:region`.
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    hours: Option<f64>,
    #[serde(default)]
    per_year: Option<f64>,
    #[serde(default)]
    mean_hours: Option<f64>,
}

/// Hours as milliseconds, refused unless finite and in (0, 100 years].
fn hours_ms(h: f64) -> Result<u64, String> {
    if h.is_finite() && h > 0.0 && h <= 100.0 * 8766.0 {
        Ok((h * MS_PER_HOUR as f64).round().max(1.0) as u64)
    } else {
        Err(format!("{h} is not a duration in hours from 0 to 876,600"))
    }
}

fn pct(v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {lo}..={hi}"))
    }
}

/// A stream replaying a recorded trace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    /// Relative to the scenario file's folder.
    file: String,
    format: String,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    tokens_per_second_per_replica: Option<f64>,
    #[serde(default)]
    window_minutes: Option<f64>,
}

/// A scenario that names no trace file.
pub fn parse(text: &str, file: &str) -> Result<Scenario, SpecError> {
    parse_with(text, file, &mut |_| {
        Err("trace files are read only from a scenario file on disk".into())
    })
}

/// Opens a trace file a scenario names, for reading.
pub type OpenTrace<'a> = dyn FnMut(&str) -> Result<Box<dyn std::io::BufRead>, String> + 'a;

/// A scenario, with `read` opening each trace file it names (the caller
/// resolves the path).
pub fn parse_with(text: &str, file: &str, read: &mut OpenTrace<'_>) -> Result<Scenario, SpecError> {
    let raw: RawScenario =
        serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    let top = |key: &str, m: String| SpecError::at(file, line_of_key(text, key), key, m);
    if raw.name.trim().is_empty() {
        return Err(top("name", "must not be empty".into()));
    }
    let start = Timestamp::parse(&raw.start).map_err(|m| top("start", m))?;
    if start.0 % (MS_PER_DAY as i64 / 1000) != 0 {
        return Err(top("start", "must be a date (midnight UTC)".into()));
    }
    if raw.years == 0 || raw.years > YEARS_MAX {
        return Err(top("years", format!("must be from 1 to {YEARS_MAX}")));
    }
    let end = start.plus_months(12 * i64::from(raw.years));
    let at_ms = |t: Timestamp| (t.0 - start.0).max(0) as u64 * 1000;
    let date = |s: &str| -> Result<Timestamp, String> {
        let t = Timestamp::parse(s)?;
        if t < start || t > end {
            return Err(format!(
                "'{s}' is outside the horizon {} to {}",
                start.date_string(),
                end.date_string()
            ));
        }
        Ok(t)
    };
    let table = AcceleratorTable::builtin();
    let known = |name: &str| -> Result<(), String> {
        if table.unit_tflops(name).is_some() {
            return Ok(());
        }
        let mut names: Vec<&str> = table.all().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        Err(format!(
            "unknown accelerator '{name}' (known: {})",
            names.join(", ")
        ))
    };
    let options = options(raw.options, &top)?;

    if raw.sites.is_empty() || raw.sites.len() > SITES_MAX {
        return Err(top("sites", format!("give from 1 to {SITES_MAX} sites")));
    }
    let mut names = BTreeSet::new();
    let mut sites = Vec::with_capacity(raw.sites.len());
    for (i, s) in raw.sites.into_iter().enumerate() {
        let e = |key: &str, m: String| {
            SpecError::at(
                file,
                line_of(text, "sites", i, Some(key)),
                &format!("sites[{i}].{key}"),
                m,
            )
        };
        if s.name.trim().is_empty() || !names.insert(s.name.clone()) {
            return Err(e("name", format!("'{}' is empty or used twice", s.name)));
        }
        if let Some(m) = crate::text::name_problem(&s.name) {
            return Err(e("name", m));
        }
        known(&s.accelerator).map_err(|m| e("accelerator", m))?;
        let appears = match &s.from {
            Some(f) => at_ms(date(f).map_err(|m| e("from", m))?),
            None => 0,
        };
        let mut capacity = vec![(appears, s.accelerators)];
        for (k, c) in s.capacity.iter().enumerate() {
            let t = at_ms(date(&c.from).map_err(|m| e(&format!("capacity[{k}].from"), m))?);
            if t <= capacity.last().map_or(0, |x| x.0) {
                return Err(e(
                    &format!("capacity[{k}].from"),
                    "steps must be in time order, after the site appears".into(),
                ));
            }
            capacity.push((t, c.accelerators));
        }
        let price = Usd::from_f64_rounded(s.price_usd_per_accelerator_hour)
            .filter(|p| p.micros() >= 0 && p.as_f64() <= 1.0e6)
            .ok_or_else(|| {
                e(
                    "price_usd_per_accelerator_hour",
                    "must be a price from 0 to 1,000,000".into(),
                )
            })?;
        let mut steps = Vec::new();
        for (k, p) in s.price_steps.iter().enumerate() {
            let key = format!("price_steps[{k}]");
            let t = at_ms(date(&p.from).map_err(|m| e(&format!("{key}.from"), m))?);
            let usd = Usd::from_f64_rounded(p.usd_per_accelerator_hour)
                .filter(|p| p.micros() >= 0 && p.as_f64() <= 1.0e6)
                .ok_or_else(|| e(&key, "must be a price from 0 to 1,000,000".into()))?;
            if steps.last().is_some_and(|(l, _)| *l >= t) {
                return Err(e(&key, "steps must be in time order".into()));
            }
            steps.push((t, usd));
        }
        let region = RegionKey::new(&s.provider.trim().to_ascii_lowercase(), s.region.trim());
        let change = pct(s.price_change_pct_per_year.unwrap_or(0.0), -100.0, 1000.0)
            .map_err(|m| e("price_change_pct_per_year", m))?;
        let rate = s.preemptions_per_hour.unwrap_or(0.0);
        if !(rate.is_finite() && (0.0..=1000.0).contains(&rate)) || (rate > 0.0 && !s.spot) {
            return Err(e(
                "preemptions_per_hour",
                "must be from 0 to 1000, and only on a spot site".into(),
            ));
        }
        if s.spot && s.prepaid {
            return Err(e("prepaid", "a site is spot or prepaid, not both".into()));
        }
        sites.push(SiteModel {
            name: s.name,
            region,
            accelerator: s.accelerator,
            capacity,
            price_usd_per_accelerator_hour: price,
            price_change_pct_per_year: change,
            price_steps: steps,
            spot: s.spot,
            preemptions_per_hour: rate,
            prepaid: s.prepaid,
        });
    }

    if raw.demand.is_empty() || raw.demand.len() > STREAMS_MAX {
        return Err(top(
            "demand",
            format!("give from 1 to {STREAMS_MAX} streams"),
        ));
    }
    let mut stream_names = BTreeSet::new();
    let mut demand = Vec::with_capacity(raw.demand.len());
    for (i, d) in raw.demand.into_iter().enumerate() {
        let e = |key: &str, m: String| {
            SpecError::at(
                file,
                line_of(text, "demand", i, Some(key)),
                &format!("demand[{i}].{key}"),
                m,
            )
        };
        if d.name.trim().is_empty() || !stream_names.insert(d.name.clone()) {
            return Err(e("name", format!("'{}' is empty or used twice", d.name)));
        }
        if let Some(m) = crate::text::name_problem(&d.name) {
            return Err(e("name", m));
        }
        let trace = match &d.trace {
            None => None,
            Some(t) => {
                for (key, given) in [
                    ("arrivals_per_hour", d.arrivals_per_hour.is_some()),
                    ("every_hours", d.every_hours.is_some()),
                    ("hours", d.hours.is_some()),
                    ("daily_amplitude_pct", d.daily_amplitude_pct.is_some()),
                    ("weekly_amplitude_pct", d.weekly_amplitude_pct.is_some()),
                ] {
                    if given {
                        return Err(e(
                            key,
                            "a replayed trace gives arrivals and work; remove this field".into(),
                        ));
                    }
                }
                Some(trace(t, read).map_err(|(k, m)| match m {
                    Ok(inner) => inner,
                    Err(m) => e(&format!("trace.{k}"), m),
                })?)
            }
        };
        let (rate, every_ms) = match (d.arrivals_per_hour, d.every_hours) {
            _ if trace.is_some() => (0.0, None),
            (Some(r), None) if r.is_finite() && r > 0.0 && r <= 1.0e6 => (r, None),
            (Some(_), None) => {
                return Err(e(
                    "arrivals_per_hour",
                    "must be more than 0 and at most 1,000,000".into(),
                ))
            }
            (None, Some(h)) => {
                // A regular stream has no rate to grow or swing: refused,
                // not ignored.
                for (key, v) in [
                    ("growth_pct_per_year", d.growth_pct_per_year),
                    ("daily_amplitude_pct", d.daily_amplitude_pct),
                    ("weekly_amplitude_pct", d.weekly_amplitude_pct),
                ] {
                    if v.is_some() {
                        return Err(e(
                            key,
                            "applies to arrivals_per_hour, not to every_hours".into(),
                        ));
                    }
                }
                (0.0, Some(hours_ms(h).map_err(|m| e("every_hours", m))?))
            }
            _ => {
                return Err(e(
                    "arrivals_per_hour",
                    "give arrivals_per_hour (Poisson) or every_hours (regular), one of them".into(),
                ))
            }
        };
        let mut accelerators = Vec::new();
        for a in d.accelerators.into_vec() {
            let r = AcceleratorRequest::parse(&a).map_err(|m| e("accelerators", m.to_string()))?;
            known(&r.name).map_err(|m| e("accelerators", m))?;
            accelerators.push(r);
        }
        if accelerators.is_empty() {
            return Err(e("accelerators", "must not be empty".into()));
        }
        let hours = match d.hours {
            Some(RawDist::Fixed(h)) => Dist::Fixed { hours: h },
            Some(RawDist::Dist(m)) => m.into_dist().map_err(|m| e("hours", m))?,
            // A trace's tasks carry their own work.
            None if trace.is_some() => Dist::Fixed { hours: 1.0 },
            None => return Err(e("hours", "give the work in hours (or a trace)".into())),
        };
        let ok = match hours {
            Dist::Fixed { hours } => hours_ms(hours).is_ok(),
            Dist::Exponential { mean_hours } => hours_ms(mean_hours).is_ok(),
            Dist::Uniform {
                min_hours,
                max_hours,
            } => {
                hours_ms(min_hours).is_ok() && hours_ms(max_hours).is_ok() && min_hours <= max_hours
            }
            Dist::LogNormal {
                median_hours,
                sigma,
            } => {
                hours_ms(median_hours).is_ok() && sigma.is_finite() && (0.0..=5.0).contains(&sigma)
            }
        };
        if !ok {
            return Err(e(
                "hours",
                "durations must be more than 0 and at most 876,600 hours (min ≤ max; sigma 0 to 5)"
                    .into(),
            ));
        }
        let from_ms = match &d.from {
            Some(f) => at_ms(date(f).map_err(|m| e("from", m))?),
            None => 0,
        };
        let until_ms = match &d.until {
            Some(u) => Some(at_ms(date(u).map_err(|m| e("until", m))?)),
            None => None,
        };
        if until_ms.is_some_and(|u| u <= from_ms) {
            return Err(e(
                "until",
                "must be after from (no arrivals otherwise)".into(),
            ));
        }
        let nodes = d.nodes.unwrap_or(1);
        if nodes == 0 || nodes > 4096 {
            return Err(e("nodes", "must be from 1 to 4096".into()));
        }
        let list = |v: Option<OneOrMany>| v.map(OneOrMany::into_vec).unwrap_or_default();
        let job = JobSpec {
            name: d.name.clone(),
            accelerators,
            nodes,
            priority: d.priority.unwrap_or(0),
            providers: list(d.providers)
                .into_iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            regions: list(d.regions),
            residency: list(d.residency),
            compliance: list(d.compliance),
            spot: d.spot.unwrap_or(SpotPolicy::Never),
            hours: None,
            max_runtime_ms: None,
            preemptible: d.preemptible,
            team: d.team.unwrap_or_else(|| "default".into()),
            recovery: Default::default(),
            no_variant: Vec::new(),
            throughput: Default::default(),
        };
        demand.push(Stream {
            name: d.name,
            kind: d.kind,
            arrivals_per_hour: rate,
            every_ms,
            growth_pct_per_year: pct(d.growth_pct_per_year.unwrap_or(0.0), -100.0, 1000.0)
                .map_err(|m| e("growth_pct_per_year", m))?,
            daily_amplitude_pct: pct(d.daily_amplitude_pct.unwrap_or(0.0), 0.0, 100.0)
                .map_err(|m| e("daily_amplitude_pct", m))?,
            weekly_amplitude_pct: pct(d.weekly_amplitude_pct.unwrap_or(0.0), 0.0, 100.0)
                .map_err(|m| e("weekly_amplitude_pct", m))?,
            from_ms,
            until_ms,
            job,
            hours,
            checkpoint_interval_ms: match d.checkpoint_every_hours {
                Some(h) => Some(hours_ms(h).map_err(|m| e("checkpoint_every_hours", m))?),
                None => None,
            },
            slo_start_ms: match d.slo_start_minutes {
                Some(m) => Some(hours_ms(m / 60.0).map_err(|m| e("slo_start_minutes", m))?),
                None => None,
            },
            trace,
        });
    }

    if raw.faults.len() > FAULTS_MAX {
        return Err(top("faults", format!("at most {FAULTS_MAX}")));
    }
    let mut faults = Vec::with_capacity(raw.faults.len());
    for (i, f) in raw.faults.into_iter().enumerate() {
        let e = |key: &str, m: String| {
            SpecError::at(
                file,
                line_of(text, "faults", i, Some(key)),
                &format!("faults[{i}].{key}"),
                m,
            )
        };
        let scope = match (f.site, f.region, f.provider) {
            (Some(s), None, None) => {
                if !sites.iter().any(|x| x.name == s) {
                    return Err(e("site", format!("no site is named '{s}'")));
                }
                Scope::Site(s)
            }
            (None, Some(r), None) => {
                let Some((p, r)) = r.split_once(':') else {
                    return Err(e("region", format!("'{r}' is not PROVIDER:REGION")));
                };
                let scope = Scope::Region {
                    provider: p.trim().to_ascii_lowercase(),
                    region: r.trim().to_string(),
                };
                if !sites.iter().any(|x| scope.covers(x)) {
                    return Err(e("region", "no site is in this region".into()));
                }
                scope
            }
            (None, None, Some(p)) => {
                let scope = Scope::Provider(p.trim().to_ascii_lowercase());
                if !sites.iter().any(|x| scope.covers(x)) {
                    return Err(e("provider", "no site is on this provider".into()));
                }
                scope
            }
            _ => {
                return Err(e(
                    "site",
                    "give one of site, region (PROVIDER:REGION) or provider".into(),
                ))
            }
        };
        let when = match (f.at, f.hours, f.per_year, f.mean_hours) {
            (Some(at), Some(h), None, None) => When::At {
                at_ms: at_ms(date(&at).map_err(|m| e("at", m))?),
                duration_ms: hours_ms(h).map_err(|m| e("hours", m))?,
            },
            (None, None, Some(r), Some(h)) => {
                if !(r.is_finite() && r > 0.0 && r <= 10_000.0) {
                    return Err(e(
                        "per_year",
                        "must be more than 0 and at most 10,000".into(),
                    ));
                }
                When::Rate {
                    per_year: r,
                    mean_duration_ms: hours_ms(h).map_err(|m| e("mean_hours", m))?,
                }
            }
            _ => {
                return Err(e(
                    "at",
                    "give at and hours (one outage), or per_year and mean_hours (a rate)".into(),
                ))
            }
        };
        faults.push(Fault { scope, when });
    }
    // Outages are drawn before the run: their expected number is bounded.
    let expected: f64 = faults
        .iter()
        .map(|f| match f.when {
            When::At { .. } => 1.0,
            When::Rate { per_year, .. } => per_year * f64::from(raw.years),
        })
        .sum();
    if expected > OUTAGES_MAX {
        return Err(top(
            "faults",
            format!(
                "about {expected:.0} outages expected over the horizon; at most {OUTAGES_MAX:.0}"
            ),
        ));
    }

    let contracts = crate::contracts::validate(raw.contracts, text, file)?;
    // Savings plans and reserved capacity are settled hour by hour after
    // the run, at list: beside a spend commitment on the same provider the
    // order of the two (and what the plan's fee burns) would be a guess.
    let mut hourly = 0usize;
    for (i, c) in contracts.iter().enumerate() {
        if matches!(c.terms, skyward_ledger::contracts::Terms::Spend(_)) {
            continue;
        }
        hourly += 1;
        if hourly > HOURLY_CONTRACTS_MAX {
            return Err(SpecError::at(
                file,
                line_of(text, "contracts", i, Some("kind")),
                &format!("contracts[{i}].kind"),
                format!(
                    "at most {HOURLY_CONTRACTS_MAX} savings plans and reservations in a scenario"
                ),
            ));
        }
        if let Some(s) = contracts.iter().find(|s| {
            s.provider == c.provider
                && matches!(s.terms, skyward_ledger::contracts::Terms::Spend(_))
        }) {
            return Err(SpecError::at(
                file,
                line_of(text, "contracts", i, Some("kind")),
                &format!("contracts[{i}].kind"),
                format!(
                    "{} is a savings plan or reserved capacity on {}, which also has the spend \
                     commitment {}: the simulator does not combine the two on one provider \
                     (simulate them as alternatives, or the reservation as a site with \
                     `prepaid: true`)",
                    c.name, c.provider, s.name
                ),
            ));
        }
    }

    let policies = match raw.policies {
        None => vec![Policy::Skyward, Policy::CheapestPerTask],
        Some(list) => {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                let policy = Policy::parse(p).map_err(|m| {
                    SpecError::at(
                        file,
                        line_of_key(text, "policies"),
                        &format!("policies[{i}]"),
                        m,
                    )
                })?;
                if !out.contains(&policy) {
                    out.push(policy);
                }
            }
            if out.is_empty() {
                return Err(top("policies", "must not be empty".into()));
            }
            out
        }
    };
    Ok(Scenario {
        name: raw.name,
        start,
        years: raw.years,
        sites,
        demand,
        faults,
        contracts,
        policies,
        options,
    })
}

fn options(
    raw: Option<RawOptions>,
    top: &dyn Fn(&str, String) -> SpecError,
) -> Result<Options, SpecError> {
    let mut o = Options::default();
    let Some(r) = raw else {
        return Ok(o);
    };
    let secs = |v: f64, key: &str, max: f64| -> Result<u64, SpecError> {
        if v.is_finite() && (0.0..=max).contains(&v) {
            Ok((v * 1000.0).round() as u64)
        } else {
            Err(top(
                &format!("options.{key}"),
                format!("{v} is outside 0..={max} seconds"),
            ))
        }
    };
    if let Some(v) = r.cycle_min_gap_s {
        o.cycle_min_gap_ms = secs(v, "cycle_min_gap_s", 86_400.0)?;
    }
    if let Some(v) = r.detection_s {
        o.detection_ms = secs(v, "detection_s", 86_400.0)?;
    }
    if let Some(v) = r.commitments_refresh_days {
        o.commitments_refresh_ms =
            secs(v * 86_400.0, "commitments_refresh_days", 366.0 * 86_400.0)?.max(1);
    }
    if let Some(v) = r.walltime_step_pct {
        if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
            return Err(top(
                "options.walltime_step_pct",
                format!("{v} is outside 0..=100"),
            ));
        }
        o.walltime_step_pct = v;
    }
    if let Some(v) = r.workloads_max {
        if v == 0 || v > Options::default().workloads_max {
            return Err(top(
                "options.workloads_max",
                format!("must be from 1 to {}", Options::default().workloads_max),
            ));
        }
        o.workloads_max = v;
    }
    Ok(o)
}

/// Reads and parses a stream's trace. Errors: (field, Err(message)) for
/// the scenario's own fields, (_, Ok(error)) for the trace file's.
fn trace(
    t: &RawTrace,
    read: &mut OpenTrace<'_>,
) -> Result<std::sync::Arc<Trace>, (&'static str, Result<SpecError, String>)> {
    let scale = t.scale.unwrap_or(1.0);
    if !(scale.is_finite() && scale > 0.0 && scale <= 10_000.0) {
        return Err((
            "scale",
            Err("must be more than 0 and at most 10,000".into()),
        ));
    }
    let window_ms = match t.window_minutes {
        None => 5 * 60_000,
        Some(m) if m.is_finite() && (1.0..=1440.0).contains(&m) => (m * 60_000.0) as u64,
        Some(_) => {
            return Err((
                "window_minutes",
                Err("must be from 1 to 1440 minutes".into()),
            ))
        }
    };
    let format = t.format.trim().to_ascii_lowercase();
    if format == "alibaba-openb" && t.tokens_per_second_per_replica.is_some() {
        return Err((
            "tokens_per_second_per_replica",
            Err("applies to format azure-llm only".into()),
        ));
    }
    if format != "azure-llm" && format != "alibaba-openb" {
        return Err((
            "format",
            Err(format!(
                "unknown trace format '{}': alibaba-openb or azure-llm",
                t.format
            )),
        ));
    }
    let mut reader = read(t.file.trim()).map_err(|m| ("file", Err(m)))?;
    let shown = t.file.trim();
    let parsed = if format == "azure-llm" {
        let tps = match t.tokens_per_second_per_replica {
            Some(v) if v.is_finite() && v > 0.0 && v <= 1.0e9 => v,
            _ => {
                return Err((
                    "tokens_per_second_per_replica",
                    Err("give the tokens per second one replica serves (more than 0)".into()),
                ))
            }
        };
        crate::trace::azure_llm_read(&mut *reader, shown, tps, window_ms)
    } else {
        crate::trace::alibaba_openb_read(&mut *reader, shown)
    }
    .map_err(|e| ("file", Ok(e)))?;
    Ok(std::sync::Arc::new(Trace {
        source: shown.to_string(),
        records: parsed.records,
        span_ms: parsed.span_ms,
        scale,
        format: format.to_string(),
        dropped: parsed
            .dropped
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(why, n)| (why.to_string(), n))
            .collect(),
    }))
}
