//! The Skyward fleet file. See `examples/` and the README for the format.

use crate::error::SpecError;
use crate::locate::line_of;
use serde::Deserialize;
use skyward_catalog::Catalog;
use skyward_model::{
    AcceleratorRequest, AlternativeScope, Contract, DataSpec, Fleet, PlanSettings, Quota,
    RegionKey, ReservedCapacity, SpotPolicy, Usd, Workload, WorkloadKind,
};
use std::collections::{BTreeMap, BTreeSet};

/// Bounds on what one fleet may hold.
pub const WORKLOADS_MAX: usize = 100_000;
pub const NODES_MAX: u32 = 100_000;
pub const REPLICAS_MAX: u32 = 10_000;
pub const HOURS_MAX: f64 = 24.0 * 366.0 * 10.0;
/// The most a plan of one fleet may add up to, with every workload on its
/// dearest option and every commitment paid: $1 trillion. Money is exact
/// integer micro-dollars (i64, up to $9.2 trillion); keeping every sum a
/// plan makes within a ninth of that means none can wrap or saturate.
pub const FLEET_COST_USD_MAX: f64 = 1.0e12;
/// Egress is never billed above this per GB (the dearest public rates are
/// about a fifth of it).
const EGRESS_USD_PER_GB_CEILING: f64 = 1.0;
pub const DATA_GB_MAX: f64 = 1.0e9;

pub const GEOGRAPHIES: &[&str] = &[
    "us", "ca", "mx", "br", "cl", "co", "eu", "uk", "ch", "no", "jp", "kr", "tw", "hk", "sg", "id",
    "my", "in", "au", "ae", "bh", "qa", "sa", "il", "za", "ma",
];
pub const CERTIFICATIONS: &[&str] = &[
    "fedramp-high",
    "fedramp-moderate",
    "gdpr",
    "hipaa",
    "iso27001",
    "itar",
    "soc2",
];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    workloads: Vec<RawWorkload>,
    #[serde(default)]
    capacity: Vec<RawCapacity>,
    #[serde(default)]
    quotas: Vec<RawQuota>,
    #[serde(default)]
    contracts: Vec<RawContract>,
    #[serde(default)]
    settings: Option<RawSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: String,
    #[serde(default)]
    kind: Option<WorkloadKind>,
    accelerators: OneOrMany,
    #[serde(default)]
    nodes: Option<u32>,
    #[serde(default)]
    replicas: Option<u32>,
    hours: f64,
    #[serde(default)]
    spot: Option<SpotPolicy>,
    #[serde(default)]
    providers: Option<OneOrMany>,
    #[serde(default)]
    regions: Option<OneOrMany>,
    #[serde(default)]
    residency: Option<OneOrMany>,
    #[serde(default)]
    compliance: Option<OneOrMany>,
    #[serde(default)]
    max_hourly_usd: Option<f64>,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    throughput: Option<BTreeMap<String, f64>>,
    /// The class (`team/name`) whose learned speeds `--profiles` applies.
    #[serde(default)]
    class: Option<String>,
    /// With `--profiles`: each learned speed one standard deviation down.
    #[serde(default)]
    risk_averse: Option<bool>,
    /// How it runs on each stack or accelerator: `plan` places it only
    /// where one applies.
    #[serde(default)]
    variants: Option<BTreeMap<String, crate::variants::RawVariant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    region: String,
    gb: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    name: String,
    provider: String,
    region: String,
    sku: String,
    #[serde(default)]
    accelerator: Option<String>,
    nodes: u32,
    #[serde(default)]
    hourly_usd: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    provider: String,
    #[serde(default)]
    region: Option<String>,
    accelerator: String,
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    name: String,
    provider: String,
    commit_usd: f64,
    #[serde(default)]
    discount_pct: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    spot_overhead_pct: Option<f64>,
}

/// What names the catalog (and the fleet's own capacity) knows.
pub(crate) struct Names {
    accelerators: BTreeMap<String, String>,
    providers: BTreeSet<String>,
    regions: BTreeSet<RegionKey>,
}

impl Names {
    pub(crate) fn new(catalog: &Catalog) -> Names {
        let mut accelerators = BTreeMap::new();
        for a in catalog.accelerators.all() {
            accelerators.insert(a.name.to_ascii_lowercase(), a.name.clone());
        }
        for a in catalog.accelerator_names() {
            accelerators.insert(a.to_ascii_lowercase(), a.to_string());
        }
        let mut regions: BTreeSet<RegionKey> = catalog.regions().into_iter().cloned().collect();
        regions.extend(catalog.network.regions());
        Names {
            accelerators,
            providers: catalog.providers().into_iter().map(String::from).collect(),
            regions,
        }
    }

    fn add_capacity(&mut self, c: &ReservedCapacity) {
        self.accelerators.insert(
            c.accelerator.name.to_ascii_lowercase(),
            c.accelerator.name.clone(),
        );
        self.providers.insert(c.region.provider.clone());
        self.regions.insert(c.region.clone());
    }

    /// Canonical spelling of an accelerator name, or an error with a hint.
    pub(crate) fn accelerator(&self, name: &str) -> Result<String, String> {
        if let Some(c) = self.accelerators.get(&name.to_ascii_lowercase()) {
            return Ok(c.clone());
        }
        Err(format!(
            "unknown accelerator '{name}'{}",
            hint(name, self.accelerators.values().map(String::as_str))
        ))
    }

    pub(crate) fn provider(&self, name: &str) -> Result<String, String> {
        let lower = name.to_ascii_lowercase();
        if self.providers.contains(&lower) {
            return Ok(lower);
        }
        Err(format!(
            "unknown provider '{name}' (known: {})",
            self.providers
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// A region allow-list entry: `provider:region` or a bare region name.
    pub(crate) fn region_entry(&self, entry: &str) -> Result<String, String> {
        let lower = entry.trim().to_ascii_lowercase();
        let found = match RegionKey::parse(&lower) {
            Some(k) => self.regions.contains(&k),
            None => self.regions.iter().any(|k| k.region == lower),
        };
        if found {
            Ok(lower)
        } else {
            let all: Vec<String> = self.regions.iter().map(|k| k.to_string()).collect();
            Err(format!(
                "unknown region '{entry}'{}",
                hint(&lower, all.iter().map(String::as_str))
            ))
        }
    }

    /// A `provider:region` the catalog, its network tables or the fleet's
    /// capacity know.
    pub(crate) fn region_key(&self, text: &str) -> Result<RegionKey, String> {
        let k = RegionKey::parse(&text.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("'{text}' is not provider:region (e.g. aws:us-east-1)"))?;
        if !self.providers.contains(&k.provider) {
            return Err(format!(
                "unknown provider '{}' in '{text}'{}",
                k.provider,
                hint(&k.provider, self.providers.iter().map(String::as_str))
            ));
        }
        // Known: a region the catalog sells in, or one the network tables
        // measure (a user or data region need not sell GPUs).
        if !self.regions.contains(&k) {
            let all: Vec<String> = self.regions.iter().map(|k| k.to_string()).collect();
            return Err(format!(
                "unknown region '{text}'{}",
                hint(&k.to_string(), all.iter().map(String::as_str))
            ));
        }
        Ok(k)
    }
}

/// " (did you mean X?)" for the closest known name, when close enough.
pub(crate) fn hint<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let lower = name.to_ascii_lowercase();
    let best = known
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .min();
    match best {
        Some((d, k)) if d <= 2.max(lower.len() / 4) => format!(" (did you mean '{k}'?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Lower-cased codes, each from a known set.
pub(crate) fn known_codes(
    list: Option<OneOrMany>,
    known: &[&str],
    what: &str,
) -> Result<Vec<String>, String> {
    list.map(OneOrMany::into_vec)
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if known.contains(&c.as_str()) {
                Ok(c)
            } else {
                Err(format!(
                    "unknown {what} '{c}' (known: {})",
                    known.join(", ")
                ))
            }
        })
        .collect()
}

/// Where a workload may run, as written in a fleet or a workload file:
/// validated and canonical. Shared by both parsers.
pub(crate) struct Placement {
    pub accelerators: Vec<AcceleratorRequest>,
    pub providers: Vec<String>,
    pub regions: Vec<String>,
    pub residency: Vec<String>,
    pub compliance: Vec<String>,
}

/// The placement fields; an error is (field, message).
pub(crate) fn placement_fields(
    names: &Names,
    accelerators: OneOrMany,
    providers: Option<OneOrMany>,
    regions: Option<OneOrMany>,
    residency: Option<OneOrMany>,
    compliance: Option<OneOrMany>,
) -> Result<Placement, (&'static str, String)> {
    let mut acc = Vec::new();
    for a in accelerators.into_vec() {
        let r =
            AcceleratorRequest::parse(&a).map_err(|m| ("accelerators", format!("'{a}': {m}")))?;
        let name = names
            .accelerator(&r.name)
            .map_err(|m| ("accelerators", m))?;
        acc.push(AcceleratorRequest {
            name,
            count: r.count,
        });
    }
    if acc.is_empty() {
        return Err(("accelerators", "list at least one MODEL:COUNT".into()));
    }
    let list =
        |v: Option<OneOrMany>, f: &dyn Fn(&str) -> Result<String, String>, key: &'static str| {
            v.map(OneOrMany::into_vec)
                .unwrap_or_default()
                .iter()
                .map(|x| f(x))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| (key, m))
        };
    Ok(Placement {
        accelerators: acc,
        providers: list(providers, &|x| names.provider(x), "providers")?,
        regions: list(regions, &|x| names.region_entry(x), "regions")?,
        residency: known_codes(residency, GEOGRAPHIES, "geography")
            .map_err(|m| ("residency", m))?,
        compliance: known_codes(compliance, CERTIFICATIONS, "certification")
            .map_err(|m| ("compliance", m))?,
    })
}

pub(crate) fn check_hours(h: f64) -> Result<f64, String> {
    if h.is_finite() && h > 0.0 && h <= HOURS_MAX {
        Ok(h)
    } else {
        Err(format!(
            "must be a number of hours above 0 and at most {HOURS_MAX}"
        ))
    }
}

pub fn parse(text: &str, file: &str, catalog: &Catalog) -> Result<Fleet, SpecError> {
    let raw: RawFleet = serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    if raw.workloads.len() > WORKLOADS_MAX {
        return Err(SpecError::at(
            file,
            None,
            "workloads",
            format!("more than {WORKLOADS_MAX} workloads"),
        ));
    }
    if raw.workloads.is_empty() {
        return Err(SpecError::at(
            file,
            crate::locate::line_of_key(text, "workloads"),
            "workloads",
            "list at least one workload to plan".into(),
        ));
    }
    let mut names = Names::new(catalog);
    let err = |section: &str, i: usize, key: &str, msg: String| {
        SpecError::at(
            file,
            line_of(text, section, i, Some(key)),
            &format!("{section}[{i}].{key}"),
            msg,
        )
    };

    let mut capacity = Vec::new();
    let mut capacity_names = BTreeSet::new();
    for (i, c) in raw.capacity.into_iter().enumerate() {
        let e = |key: &str, m: String| err("capacity", i, key, m);
        if !capacity_names.insert(c.name.clone()) {
            return Err(e("name", format!("duplicate capacity name '{}'", c.name)));
        }
        // A pool is in a region the catalog knows: its geography and
        // certifications decide residency and compliance.
        let provider = names.provider(&c.provider).map_err(|m| e("provider", m))?;
        let region = names
            .region_key(&format!("{provider}:{}", c.region))
            .map_err(|m| e("region", m))?;
        let catalog_row = catalog
            .offerings
            .iter()
            .find(|o| o.region.provider == provider && o.sku.eq_ignore_ascii_case(&c.sku));
        let accelerator = match (&c.accelerator, catalog_row) {
            (Some(a), _) => {
                let r = AcceleratorRequest::parse(a).map_err(|m| e("accelerator", m.to_string()))?;
                let canon = names.accelerator(&r.name).unwrap_or(r.name.clone());
                AcceleratorRequest { name: canon, count: r.count }
            }
            (None, Some(o)) => AcceleratorRequest { name: o.accelerator.clone(), count: o.accelerator_count },
            (None, None) => {
                return Err(e("sku", format!("SKU '{}' is not in the {provider} catalog; add `accelerator: MODEL:COUNT` per node", c.sku)))
            }
        };
        if c.nodes == 0 || c.nodes > NODES_MAX {
            return Err(e("nodes", format!("must be 1 to {NODES_MAX}")));
        }
        let sku = catalog_row.map(|o| o.sku.clone()).unwrap_or(c.sku.clone());
        let hourly = match c.hourly_usd {
            Some(h) => Usd::from_f64_rounded(h)
                .filter(|u| *u >= Usd::ZERO)
                .ok_or_else(|| e("hourly_usd", "must be a non-negative amount".into()))?,
            None => catalog_row
                .and_then(|o| o.on_demand_usd_per_hour)
                .unwrap_or(Usd::ZERO),
        };
        let rc = ReservedCapacity {
            name: c.name,
            region,
            sku,
            accelerator,
            nodes: c.nodes,
            hourly_usd: hourly,
        };
        names.add_capacity(&rc);
        capacity.push(rc);
    }

    let mut workloads = Vec::with_capacity(raw.workloads.len());
    let mut seen = BTreeSet::new();
    for (i, w) in raw.workloads.into_iter().enumerate() {
        let e = |key: &str, m: String| err("workloads", i, key, m);
        if w.name.trim().is_empty() {
            return Err(e("name", "must not be empty".into()));
        }
        if !seen.insert(w.name.clone()) {
            return Err(e("name", format!("duplicate workload name '{}'", w.name)));
        }
        let kind = w.kind.unwrap_or(WorkloadKind::Train);
        let Placement {
            accelerators,
            providers,
            regions,
            residency,
            compliance,
        } = placement_fields(
            &names,
            w.accelerators,
            w.providers,
            w.regions,
            w.residency,
            w.compliance,
        )
        .map_err(|(k, m)| e(k, m))?;
        let nodes = w.nodes.unwrap_or(1);
        if nodes == 0 || nodes > NODES_MAX {
            return Err(e("nodes", format!("must be 1 to {NODES_MAX}")));
        }
        let replicas = w.replicas.unwrap_or(1);
        if replicas == 0 || replicas > REPLICAS_MAX {
            return Err(e("replicas", format!("must be 1 to {REPLICAS_MAX}")));
        }
        if replicas > 1 && kind != WorkloadKind::Serve {
            return Err(e(
                "replicas",
                "only `kind: serve` workloads have replicas".into(),
            ));
        }
        let hours = check_hours(w.hours).map_err(|m| e("hours", m))?;
        let max_hourly_usd = match w.max_hourly_usd {
            Some(v) => Some(
                Usd::from_f64_rounded(v)
                    .filter(|u| *u > Usd::ZERO)
                    .ok_or_else(|| e("max_hourly_usd", "must be a positive amount".into()))?,
            ),
            None => None,
        };
        let data = match w.data {
            Some(d) => {
                let region = names.region_key(&d.region).map_err(|m| e("data", m))?;
                if !(d.gb.is_finite() && d.gb >= 0.0 && d.gb <= DATA_GB_MAX) {
                    return Err(e("data", format!("gb must be from 0 to {DATA_GB_MAX}")));
                }
                Some(DataSpec { region, gb: d.gb })
            }
            None => None,
        };
        let users = match w.users {
            Some(u) => u
                .iter()
                .map(|x| names.region_key(x))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| e("users", m))?,
            None => Vec::new(),
        };
        if let Some(l) = w.latency_ms {
            if !(l.is_finite() && l > 0.0) {
                return Err(e(
                    "latency_ms",
                    "must be a positive number of milliseconds".into(),
                ));
            }
            if users.is_empty() {
                return Err(e(
                    "latency_ms",
                    "a latency bound needs `users:` (the regions requests come from)".into(),
                ));
            }
        }
        let mut throughput = BTreeMap::new();
        for (k, v) in w.throughput.unwrap_or_default() {
            let name = names
                .accelerator(k.split(':').next().unwrap_or(&k))
                .map_err(|m| e("throughput", m))?;
            if !(v.is_finite() && v > 0.0) {
                return Err(e(
                    "throughput",
                    format!("{k}: must be a positive relative throughput"),
                ));
            }
            throughput.insert(name, v);
        }
        let speed_sources = throughput
            .keys()
            .map(|k| (k.clone(), "the fleet file's throughput:".to_string()))
            .collect();
        let class = match w.class {
            None => None,
            Some(c) => {
                let ok = c.len() <= 200
                    && !c.chars().any(char::is_control)
                    && matches!(c.split_once('/'), Some((t, n)) if !t.is_empty() && !n.is_empty() && !n.contains('/'));
                if !ok {
                    return Err(e(
                        "class",
                        format!(
                            "'{}' is not team/name (the class runs report under)",
                            c.chars().take(64).collect::<String>()
                        ),
                    ));
                }
                Some(c)
            }
        };
        let scopes = vec![AlternativeScope::default(); accelerators.len()];
        let variants = crate::variants::checked(w.variants.unwrap_or_default(), &names)
            .map_err(|(k, m)| e(&k, m))?;
        let alternatives: Vec<String> = accelerators.iter().map(|a| a.name.clone()).collect();
        let no_variant = crate::variants::no_variant(&variants, &alternatives);
        if !variants.is_empty() && alternatives.iter().all(|a| no_variant.contains(a)) {
            return Err(e(
                "variants",
                format!(
                    "no accelerator alternative has a variant (alternatives: {}; variant keys: {})",
                    alternatives.join(", "),
                    variants.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        workloads.push(Workload {
            no_variant,
            name: w.name,
            kind,
            accelerators,
            alternative_scopes: scopes,
            nodes,
            replicas,
            hours,
            spot: w.spot.unwrap_or(SpotPolicy::Never),
            providers,
            regions,
            residency,
            compliance,
            max_hourly_usd,
            data,
            users,
            latency_ms: w.latency_ms,
            throughput,
            speed_sources,
            class,
            risk_averse: w.risk_averse.unwrap_or(false),
        });
    }

    let mut quotas = Vec::new();
    for (i, q) in raw.quotas.into_iter().enumerate() {
        let e = |key: &str, m: String| err("quotas", i, key, m);
        let provider = names.provider(&q.provider).map_err(|m| e("provider", m))?;
        let region = match q.region {
            Some(r) => Some(
                names
                    .region_entry(&format!("{provider}:{r}"))
                    .map_err(|m| e("region", m))?
                    .split_once(':')
                    .map(|x| x.1.to_string())
                    .unwrap_or(r),
            ),
            None => None,
        };
        let accelerator = names
            .accelerator(&q.accelerator)
            .map_err(|m| e("accelerator", m))?;
        quotas.push(Quota {
            provider,
            region,
            accelerator,
            max: q.max,
        });
    }

    let mut contracts = Vec::new();
    let mut contract_providers = BTreeSet::new();
    for (i, c) in raw.contracts.into_iter().enumerate() {
        let e = |key: &str, m: String| err("contracts", i, key, m);
        let provider = names.provider(&c.provider).map_err(|m| e("provider", m))?;
        if !contract_providers.insert(provider.clone()) {
            return Err(e("provider", format!("a second spend contract for '{provider}': combine them into one (sum the commitments)")));
        }
        if c.commit_usd.is_finite() && c.commit_usd > FLEET_COST_USD_MAX {
            return Err(e(
                "commit_usd",
                format!(
                    "${:.3e} is above the ${FLEET_COST_USD_MAX:.0e} a plan can account exactly",
                    c.commit_usd
                ),
            ));
        }
        let commit = Usd::from_f64_rounded(c.commit_usd)
            .filter(|u| *u >= Usd::ZERO)
            .ok_or_else(|| e("commit_usd", "must be a non-negative amount".into()))?;
        let discount = c.discount_pct.unwrap_or(0.0);
        if !(discount.is_finite() && (0.0..100.0).contains(&discount)) {
            return Err(e("discount_pct", "must be from 0 to below 100".into()));
        }
        contracts.push(Contract {
            name: c.name,
            provider,
            commit_usd: commit,
            discount_pct: discount,
        });
    }

    let mut settings = PlanSettings::default();
    if let Some(s) = raw.settings {
        if let Some(o) = s.spot_overhead_pct {
            if !(o.is_finite() && (0.0..=500.0).contains(&o)) {
                return Err(SpecError::at(
                    file,
                    crate::locate::line_of_key(text, "spot_overhead_pct")
                        .or_else(|| crate::locate::line_of_key(text, "settings")),
                    "settings.spot_overhead_pct",
                    "must be from 0 to 500".into(),
                ));
            }
            settings.spot_overhead_pct = o;
        }
    }
    let fleet = Fleet {
        workloads,
        capacity,
        quotas,
        contracts,
        settings,
    };
    if let Some((i, message)) = money_out_of_range(&fleet, catalog) {
        let field = if i == usize::MAX {
            "contracts"
        } else {
            "hours"
        };
        return Err(match i {
            usize::MAX => SpecError::at(
                file,
                crate::locate::line_of_key(text, "contracts"),
                field,
                message,
            ),
            _ => err("workloads", i, field, message),
        });
    }
    Ok(fleet)
}

/// The dearest a node-hour of each (accelerator, count) can be: catalog
/// offerings (on-demand or spot) and the fleet's own pools.
fn dearest_node_hour(fleet: &Fleet, catalog: &Catalog) -> BTreeMap<(String, u32), f64> {
    let mut out: BTreeMap<(String, u32), f64> = BTreeMap::new();
    let mut note = |name: &str, count: u32, usd: f64| {
        let e = out.entry((name.to_ascii_lowercase(), count)).or_insert(0.0);
        *e = e.max(usd);
    };
    for o in &catalog.offerings {
        for p in [o.on_demand_usd_per_hour, o.spot_usd_per_hour]
            .into_iter()
            .flatten()
        {
            note(&o.accelerator, o.accelerator_count, p.as_f64());
        }
    }
    for c in &fleet.capacity {
        note(
            &c.accelerator.name,
            c.accelerator.count,
            c.hourly_usd.as_f64(),
        );
    }
    out
}

/// A workload whose dearest option, or a fleet whose dearest plan, would
/// leave exact money: (workload index, or `usize::MAX` for the fleet, and
/// what to say). Checked before planning, so no sum the plan makes can
/// wrap or saturate.
fn money_out_of_range(fleet: &Fleet, catalog: &Catalog) -> Option<(usize, String)> {
    let dearest = dearest_node_hour(fleet, catalog);
    let spot = 1.0 + fleet.settings.spot_overhead_pct.max(0.0) / 100.0;
    let mut total: f64 = fleet.contracts.iter().map(|c| c.commit_usd.as_f64()).sum();
    let mut largest = (0usize, 0.0f64);
    for (i, w) in fleet.workloads.iter().enumerate() {
        let Some(first) = w.accelerators.first() else {
            continue;
        };
        let acc = &catalog.accelerators;
        let per_node_hour = w
            .accelerators
            .iter()
            .filter_map(|a| {
                let price = *dearest.get(&(a.name.to_ascii_lowercase(), a.count))?;
                // A slower alternative needs proportionally more hours.
                let factor = match (w.throughput.get(&first.name), w.throughput.get(&a.name)) {
                    (Some(r), Some(t)) if *t > 0.0 => r / t,
                    _ => {
                        let r =
                            acc.unit_tflops(&first.name).unwrap_or(1.0) * f64::from(first.count);
                        let t = acc.unit_tflops(&a.name).unwrap_or(1.0) * f64::from(a.count);
                        if t > 0.0 {
                            (r / t).max(1.0)
                        } else {
                            1.0
                        }
                    }
                };
                Some(price * factor.max(1.0) * spot)
            })
            .fold(0.0, f64::max);
        let node_hours = f64::from(w.nodes) * f64::from(w.replicas) * w.hours;
        let egress = w
            .data
            .as_ref()
            .map_or(0.0, |d| d.gb * EGRESS_USD_PER_GB_CEILING)
            * f64::from(w.replicas);
        let worst = node_hours * per_node_hour + egress;
        if worst > FLEET_COST_USD_MAX {
            return Some((
                i,
                format!(
                    "'{}' could cost up to ${worst:.3e} ({} nodes × {} replicas × {} hours at up to ${per_node_hour:.2} a node-hour), above the ${FLEET_COST_USD_MAX:.0e} a plan can account exactly; shorten the horizon or split the workload",
                    w.name, w.nodes, w.replicas, w.hours
                ),
            ));
        }
        if worst > largest.1 {
            largest = (i, worst);
        }
        total += worst;
    }
    if total > FLEET_COST_USD_MAX {
        let (i, worst) = largest;
        let name = fleet.workloads.get(i).map_or("", |w| w.name.as_str());
        return Some((
            if fleet.workloads.is_empty() { usize::MAX } else { i },
            format!(
                "the fleet could cost up to ${total:.3e} with its commitments, above the ${FLEET_COST_USD_MAX:.0e} a plan can account exactly; its largest workload is '{name}' (up to ${worst:.3e}); plan a shorter horizon or fewer workloads at a time"
            ),
        ));
    }
    None
}

/// Canonical accelerator names the catalog knows.
pub fn known_accelerators(catalog: &Catalog) -> Vec<String> {
    let names = Names::new(catalog);
    names.accelerators.into_values().collect()
}
