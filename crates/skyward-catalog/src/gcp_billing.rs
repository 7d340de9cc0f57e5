//! The GCP Cloud Billing Catalog API (`services/6F81-5844-456A/skus`,
//! Compute Engine; an API key) read into offerings. Pure: the caller
//! fetches the pages (following `nextPageToken`), this reads each page and
//! joins the SKUs of all pages into offerings, with every SKU left out
//! counted under its reason.
//!
//! GCP prices an accelerator machine in parts, each its own SKU per
//! region: the GPUs (`resourceGroup: GPU`, "Nvidia Tesla A100 GPU running
//! in Americas"), the host's vCPUs ("A2 Instance Core running in …",
//! per vCPU-hour) and its memory ("A2 Instance Ram running in …", per
//! GiB-hour). A machine type's price in a region is
//! `count × GPU + vCPUs × core + GiB × RAM`, priced only when all three
//! SKUs list that region; spot (`usageType: Preemptible`) the same way
//! from the spot SKUs. TPU v5e, v5p and v6e are priced per chip-hour in the
//! same service (`TpuV6e`, …): a slice is chips × that price. Which
//! accelerators, vCPUs and memory a machine type has is not in the API: it
//! comes from the machine types the catalog already knows (`known`).

use skyward_model::{Offering, RegionKey, Usd};
use std::collections::{BTreeMap, BTreeSet};

/// Compute Engine's SKUs (the default endpoint).
pub const ENDPOINT: &str = "https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus";

/// One SKU, the fields read; `usd_per_unit` is the current price's first
/// tier (`units + nanos / 1e9`), `None` when the SKU gives no price.
#[derive(Debug, Clone, PartialEq)]
pub struct Sku {
    pub description: String,
    pub resource_family: String,
    pub resource_group: String,
    pub usage_type: String,
    pub regions: Vec<String>,
    pub usage_unit: String,
    pub currency: String,
    pub price: Option<f64>,
}

/// One page: its SKUs and the token of the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub skus: Vec<Sku>,
    pub next_token: Option<String>,
}

/// SKUs one page may hold (the API serves at most 5,000).
pub const SKUS_PER_PAGE_MAX: usize = 100_000;
/// Regions one SKU may list.
const REGIONS_PER_SKU_MAX: usize = 1_000;

/// A `Money` (`{"currencyCode", "units": "2", "nanos": 933908000}`):
/// `units` is an int64, sent as a string; either may be absent (0).
fn money(m: &serde_json::Value, at: &str) -> Result<(String, f64), String> {
    let currency = m
        .get("currencyCode")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string();
    let units: i64 = match m.get("units") {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{at}.units: '{}' is not an integer", trunc(s)))?,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{at}.units: {n} is not an integer"))?,
        Some(_) => return Err(format!("{at}.units is not an integer")),
    };
    let nanos = match m.get("nanos") {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|n| n.abs() < 1_000_000_000)
            .ok_or_else(|| format!("{at}.nanos is not an integer below 10^9"))?,
    };
    Ok((currency, units as f64 + nanos as f64 / 1e9))
}

fn trunc(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Reads one page of the API (`{"skus": [...], "nextPageToken": "…"}`; an
/// empty or absent token ends the listing). An error says what is wrong.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
        return Err(format!("the API answered an error: {}", trunc(msg)));
    }
    let skus = v
        .get("skus")
        .and_then(|i| i.as_array())
        .ok_or("no \"skus\" list (not a Cloud Billing Catalog API page)")?;
    if skus.len() > SKUS_PER_PAGE_MAX {
        return Err(format!("more than {SKUS_PER_PAGE_MAX} SKUs"));
    }
    let next_token = match v.get("nextPageToken") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"nextPageToken\" is not a string".into()),
    };
    let mut out = Vec::with_capacity(skus.len());
    for (i, it) in skus.iter().enumerate() {
        let s = |x: Option<&serde_json::Value>, k: &str| -> Result<String, String> {
            x.and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("skus[{i}]: \"{k}\" missing or not a string"))
        };
        let category = it
            .get("category")
            .filter(|c| c.is_object())
            .ok_or_else(|| format!("skus[{i}]: \"category\" missing"))?;
        let regions: Vec<String> = match it.get("serviceRegions") {
            None => Vec::new(),
            Some(serde_json::Value::Array(a)) if a.len() <= REGIONS_PER_SKU_MAX => a
                .iter()
                .map(|r| {
                    r.as_str()
                        .map(|x| x.to_ascii_lowercase())
                        .ok_or_else(|| format!("skus[{i}].serviceRegions: not a string"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "skus[{i}].serviceRegions is not a list of at most {REGIONS_PER_SKU_MAX}"
                ))
            }
        };
        // The timeline's last entry is the current price.
        let info = match it.get("pricingInfo") {
            None => None,
            Some(serde_json::Value::Array(a)) => a.last(),
            Some(_) => return Err(format!("skus[{i}].pricingInfo is not a list")),
        };
        let expr = info.and_then(|p| p.get("pricingExpression"));
        let usage_unit = expr
            .and_then(|e| e.get("usageUnit"))
            .and_then(|u| u.as_str())
            .unwrap_or("")
            .to_string();
        let tier = match expr.and_then(|e| e.get("tieredRates")) {
            None => None,
            Some(serde_json::Value::Array(t)) => t.first(),
            Some(_) => {
                return Err(format!(
                    "skus[{i}].pricingInfo.pricingExpression.tieredRates is not a list"
                ))
            }
        };
        let (currency, price) = match tier.and_then(|t| t.get("unitPrice")) {
            None => (String::new(), None),
            Some(m) => {
                let (c, p) = money(m, &format!("skus[{i}].tieredRates[0].unitPrice"))?;
                (c, Some(p))
            }
        };
        out.push(Sku {
            description: s(it.get("description"), "description")?,
            resource_family: s(category.get("resourceFamily"), "category.resourceFamily")?,
            resource_group: s(category.get("resourceGroup"), "category.resourceGroup")?,
            usage_type: s(category.get("usageType"), "category.usageType")?,
            regions,
            usage_unit,
            currency,
            price,
        });
    }
    Ok(Page {
        skus: out,
        next_token,
    })
}

/// A GCP machine type (or TPU slice) the catalog knows: accelerator,
/// count, vCPUs, memory (GiB). One machine type may carry several
/// accelerators (`n1-standard-8` with a T4, a P4 or a P100).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub machine_type: String,
    pub accelerator: String,
    pub accelerator_count: u32,
    pub vcpus: f64,
    pub memory_gib: f64,
}

/// The GCP machine types `offerings` has, one per (type, accelerator).
pub fn known_machines(offerings: &[Offering]) -> Vec<Machine> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for o in offerings.iter().filter(|o| o.region.provider == "gcp") {
        if seen.insert((o.sku.clone(), o.accelerator.clone(), o.accelerator_count)) {
            out.push(Machine {
                machine_type: o.sku.clone(),
                accelerator: o.accelerator.clone(),
                accelerator_count: o.accelerator_count,
                vcpus: o.vcpus,
                memory_gib: o.memory_gib,
            });
        }
    }
    out
}

/// How the SKU descriptions name each machine series' cores and memory
/// ("A2 Instance Core running in Americas"), by the type's prefix.
const SERIES: &[(&str, &str)] = &[
    ("a2", "A2 Instance"),
    ("a3", "A3 Instance"),
    ("a4", "A4 Instance"),
    ("g2", "G2 Instance"),
    ("n1", "N1 Predefined Instance"),
];

/// How the SKU descriptions name each GPU ("Nvidia Tesla A100 GPU
/// running in …"; the A100 80GB is "Nvidia A100 80GB GPU …").
const GPUS: &[(&str, &[&str])] = &[
    ("A100", &["A100 GPU"]),
    ("A100-80GB", &["A100 80GB GPU"]),
    ("H100", &["H100 80GB GPU"]),
    (
        "H100-MEGA",
        &[
            "H100 80GB Mega GPU",
            "H100 Mega 80GB GPU",
            "H100 80GB Plus GPU",
        ],
    ),
    ("H200", &["H200 141GB GPU"]),
    ("B200", &["B200 GPU", "B200 (1 gpu slice)"]),
    ("L4", &["L4 GPU"]),
    ("T4", &["T4 GPU"]),
    ("V100", &["V100 GPU"]),
    ("P100", &["P100 GPU"]),
    ("P4", &["P4 GPU"]),
];

/// How the SKU descriptions name each TPU generation priced per chip.
const TPUS: &[(&str, &str)] = &[
    ("tpu-v5e", "TpuV5e"),
    ("tpu-v5p", "TpuV5p"),
    ("tpu-v6e", "TpuV6e"),
];

/// Why a SKU is not a part of a price (counted per reason).
pub const NOT_COMPUTE: &str = "not compute (storage, network, licence)";
pub const COMMITMENT: &str = "committed-use or other non-on-demand usage";
pub const NOT_HOURLY: &str = "not priced per hour (or per GiB-hour for memory)";
pub const NOT_USD: &str = "not in USD";
pub const NO_PRICE: &str = "no price in its pricingInfo";
pub const ZERO_PRICE: &str = "price 0 (not a price)";
pub const SPECIAL: &str =
    "custom, sole-tenant, reserved, premium or scheduled (DWS, flex-start) pricing";
pub const UNUSED: &str = "not the cores, memory, GPU or TPU of a machine type the catalog knows";
/// A machine type the catalog knows whose accelerator no SKU prices
/// (TPU v2–v4 are sold through the Cloud TPU service, not fetched).
pub const NO_ACCELERATOR_SKU: &str =
    "catalog machine type whose accelerator no fetched SKU prices (counted per type; TPU v2-v4 are in the Cloud TPU service)";
/// Why a machine type in a region is not an offering.
pub const PART_MISSING: &str =
    "machine type in a region where its GPU is priced but its cores or memory are not (counted per type and region)";

/// What a SKU prices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Core(&'static str),
    Ram(&'static str),
    Gpu(&'static str),
    Tpu(&'static str),
}

fn is_spot(s: &Sku) -> bool {
    s.usage_type == "Preemptible"
        || s.description.contains("Preemptible")
        || s.description.contains("Spot")
}

/// The part a SKU prices, or why it prices none.
fn part_of(s: &Sku) -> Result<Part, &'static str> {
    if s.resource_family != "Compute" {
        return Err(NOT_COMPUTE);
    }
    if s.usage_type != "OnDemand" && s.usage_type != "Preemptible" {
        return Err(COMMITMENT);
    }
    let lower = s.description.to_ascii_lowercase();
    if [
        "custom",
        "sole tenancy",
        "reserved",
        "premium",
        "dws",
        "flex",
        "calendar",
        "commitment",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return Err(SPECIAL);
    }
    if s.resource_group == "GPU" {
        return GPUS
            .iter()
            .find(|(_, names)| names.iter().any(|n| s.description.contains(n)))
            .map(|(g, _)| Part::Gpu(g))
            .ok_or(UNUSED);
    }
    if let Some((t, _)) = TPUS.iter().find(|(_, n)| s.description.contains(n)) {
        return Ok(Part::Tpu(t));
    }
    let series = SERIES
        .iter()
        .find(|(_, n)| lower.contains(&n.to_ascii_lowercase()))
        .map(|(p, _)| *p)
        .ok_or(UNUSED)?;
    match s.resource_group.as_str() {
        "CPU" => Ok(Part::Core(series)),
        "RAM" => Ok(Part::Ram(series)),
        // N1's predefined cores and memory share one group.
        "N1Standard" if s.description.contains("Core") => Ok(Part::Core(series)),
        "N1Standard" if s.description.contains("Ram") => Ok(Part::Ram(series)),
        _ => Err(UNUSED),
    }
}

/// The unit a part is priced in.
fn unit_of(p: &Part) -> &'static str {
    match p {
        Part::Ram(_) => "GiBy.h",
        _ => "h",
    }
}

/// Folds the SKUs of every page into offerings of `known` machine types
/// (sorted by region and type), in `regions` (all when empty), and counts
/// each SKU left out under its reason.
pub fn offerings(
    skus: &[Sku],
    known: &[Machine],
    regions: &[String],
    source: &str,
) -> (Vec<Offering>, BTreeMap<&'static str, u64>) {
    let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
    let wanted = |r: &str| regions.is_empty() || regions.iter().any(|w| w == r);
    // (part, spot, region) → price; two SKUs for one: the lower.
    let mut prices: BTreeMap<(Part, bool, String), f64> = BTreeMap::new();
    let used_series: BTreeSet<&str> = known
        .iter()
        .filter_map(|m| m.machine_type.split('-').next())
        .collect();
    for s in skus {
        let part = match part_of(s) {
            Ok(p) => p,
            Err(why) => {
                *dropped.entry(why).or_insert(0) += 1;
                continue;
            }
        };
        let needed = match &part {
            Part::Core(x) | Part::Ram(x) => used_series.contains(x),
            Part::Gpu(g) => known.iter().any(|m| m.accelerator == *g),
            Part::Tpu(t) => known.iter().any(|m| {
                skyward_model::accel::tpu_slice_chips(&m.accelerator).map(|(f, _)| f) == Some(*t)
            }),
        };
        let why = if !needed {
            Some(UNUSED)
        } else if s.usage_unit != unit_of(&part) {
            Some(NOT_HOURLY)
        } else if !s.currency.eq_ignore_ascii_case("USD") && s.price.is_some() {
            Some(NOT_USD)
        } else {
            match s.price {
                None => Some(NO_PRICE),
                Some(p) if !(p > 0.0 && p.is_finite()) => Some(ZERO_PRICE),
                Some(_) => None,
            }
        };
        if let Some(r) = why {
            *dropped.entry(r).or_insert(0) += 1;
            continue;
        }
        let price = s.price.unwrap_or(0.0);
        let spot = is_spot(s);
        for r in s.regions.iter().filter(|r| wanted(r)) {
            let e = prices
                .entry((part.clone(), spot, r.clone()))
                .or_insert(price);
            *e = e.min(price);
        }
    }
    let mut out = Vec::new();
    for m in known {
        let tpu = skyward_model::accel::tpu_slice_chips(&m.accelerator);
        let prefix = m.machine_type.split('-').next().unwrap_or("");
        let lead = match tpu {
            Some((t, _)) => TPUS
                .iter()
                .find(|(f, _)| *f == t)
                .map(|(f, _)| Part::Tpu(f)),
            None => GPUS
                .iter()
                .find(|(g, _)| *g == m.accelerator)
                .map(|(g, _)| Part::Gpu(g)),
        };
        let Some(lead) = lead else {
            *dropped.entry(NO_ACCELERATOR_SKU).or_insert(0) += 1;
            continue;
        };
        let series = SERIES.iter().find(|(p, _)| *p == prefix).map(|(p, _)| *p);
        // The regions where the accelerator itself is priced.
        let lead_regions: BTreeSet<&String> = prices
            .keys()
            .filter(|(p, _, _)| *p == lead)
            .map(|(_, _, r)| r)
            .collect();
        if lead_regions.is_empty() {
            *dropped.entry(NO_ACCELERATOR_SKU).or_insert(0) += 1;
        }
        for region in lead_regions {
            let price_of = |spot: bool| -> Option<f64> {
                let get = |p: Part| prices.get(&(p, spot, region.clone())).copied();
                let lead_price = get(lead.clone())?;
                match tpu {
                    Some((_, chips)) => Some(lead_price * chips as f64),
                    None => {
                        let s = series?;
                        Some(
                            lead_price * m.accelerator_count as f64
                                + get(Part::Core(s))? * m.vcpus
                                + get(Part::Ram(s))? * m.memory_gib,
                        )
                    }
                }
            };
            let on_demand = price_of(false).and_then(Usd::from_f64_rounded);
            let spot = price_of(true).and_then(Usd::from_f64_rounded);
            if on_demand.is_none() && spot.is_none() {
                *dropped.entry(PART_MISSING).or_insert(0) += 1;
                continue;
            }
            out.push(Offering {
                region: RegionKey::new("gcp", region),
                sku: m.machine_type.clone(),
                accelerator: m.accelerator.clone(),
                accelerator_count: m.accelerator_count,
                vcpus: m.vcpus,
                memory_gib: m.memory_gib,
                on_demand_usd_per_hour: on_demand,
                spot_usd_per_hour: spot,
                zones: 1,
                source: source.to_string(),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.region.region, &a.sku, &a.accelerator).cmp(&(&b.region.region, &b.sku, &b.accelerator))
    });
    (out, dropped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sku(desc: &str, group: &str, usage: &str, unit: &str, units: &str, nanos: i64) -> String {
        serde_json::json!({
            "name": "services/6F81-5844-456A/skus/X", "skuId": "X",
            "description": desc,
            "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute",
                          "resourceGroup": group, "usageType": usage},
            "serviceRegions": ["us-central1"],
            "pricingInfo": [{"effectiveTime": "2026-11-01T00:00:00Z", "summary": "",
                "pricingExpression": {"usageUnit": unit, "displayQuantity": 1,
                    "tieredRates": [{"startUsageAmount": 0,
                        "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos}}]},
                "currencyConversionRate": 1}],
            "serviceProviderName": "Google"
        })
        .to_string()
    }

    fn page(skus: &[String]) -> Vec<Sku> {
        parse_page(
            format!(
                "{{\"skus\": [{}], \"nextPageToken\": \"\"}}",
                skus.join(",")
            )
            .as_bytes(),
        )
        .unwrap()
        .skus
    }

    fn a2() -> Vec<Machine> {
        vec![Machine {
            machine_type: "a2-highgpu-1g".into(),
            accelerator: "A100".into(),
            accelerator_count: 1,
            vcpus: 12.0,
            memory_gib: 85.0,
        }]
    }

    /// Google's GPU pricing page lists a2-highgpu-1g in us-central1 at
    /// $3.673385 an hour: 12 × $0.031611 + 85 × $0.004237 + $2.933908.
    #[test]
    fn a2_highgpu_1g_is_its_gpu_cores_and_memory() {
        let skus = page(&[
            sku(
                "Nvidia Tesla A100 GPU running in Americas",
                "GPU",
                "OnDemand",
                "h",
                "2",
                933_908_000,
            ),
            sku(
                "A2 Instance Core running in Americas",
                "CPU",
                "OnDemand",
                "h",
                "0",
                31_611_000,
            ),
            sku(
                "A2 Instance Ram running in Americas",
                "RAM",
                "OnDemand",
                "GiBy.h",
                "0",
                4_237_000,
            ),
            sku(
                "Commitment v1: A2 Cpu in Americas for 1 Year",
                "CPU",
                "Commit1Yr",
                "h",
                "0",
                19_915_000,
            ),
            sku(
                "Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in Americas",
                "GPU",
                "Preemptible",
                "h",
                "1",
                0,
            ),
        ]);
        let (o, dropped) = offerings(&skus, &a2(), &[], "src");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].on_demand_usd_per_hour, Usd::from_f64_rounded(3.673385));
        // No spot price for the host's parts: no spot price at all.
        assert_eq!(o[0].spot_usd_per_hour, None);
        assert_eq!(dropped.get(COMMITMENT), Some(&1));
    }

    #[test]
    fn a_host_without_memory_price_is_no_offering() {
        let skus = page(&[
            sku(
                "Nvidia Tesla A100 GPU running in Americas",
                "GPU",
                "OnDemand",
                "h",
                "2",
                0,
            ),
            sku(
                "A2 Instance Core running in Americas",
                "CPU",
                "OnDemand",
                "h",
                "0",
                1,
            ),
        ]);
        let (o, dropped) = offerings(&skus, &a2(), &[], "src");
        assert!(o.is_empty());
        assert_eq!(dropped.get(PART_MISSING), Some(&1));
    }

    #[test]
    fn units_and_names_are_checked() {
        let skus = page(&[
            sku(
                "A2 Instance Ram running in Americas",
                "RAM",
                "OnDemand",
                "h",
                "0",
                1,
            ),
            sku(
                "Nvidia Tesla T4 Virtual Workstation GPU running in Americas",
                "GPU",
                "OnDemand",
                "h",
                "1",
                0,
            ),
            sku(
                "Nvidia A100 80GB GPU running in Americas",
                "GPU",
                "OnDemand",
                "h",
                "3",
                0,
            ),
            sku(
                "A2 Custom Instance Core running in Americas",
                "CPU",
                "OnDemand",
                "h",
                "0",
                1,
            ),
        ]);
        let (_, dropped) = offerings(&skus, &a2(), &[], "src");
        assert_eq!(dropped.get(NOT_HOURLY), Some(&1));
        // The T4 workstation SKU and the A100 80GB (the catalog's a2 here
        // is the 40 GB one) price nothing known.
        assert_eq!(dropped.get(UNUSED), Some(&2));
        assert_eq!(dropped.get(SPECIAL), Some(&1));
    }

    #[test]
    fn malformed_pages_say_what_is_wrong() {
        for (body, want) in [
            (&b"<html>"[..], "not JSON"),
            (br#"{"services": []}"#, "no \"skus\""),
            (br#"{"error": {"code": 400, "message": "API key not valid."}}"#, "API key not valid"),
            (br#"{"skus": [{"description": "x"}]}"#, "skus[0]: \"category\""),
            (
                br#"{"skus": [{"description": "x", "category": {"resourceFamily": "Compute", "resourceGroup": "GPU", "usageType": "OnDemand"}, "pricingInfo": [{"pricingExpression": {"usageUnit": "h", "tieredRates": [{"unitPrice": {"units": "two"}}]}}]}]}"#,
                "units: 'two' is not an integer",
            ),
            (br#"{"skus": [], "nextPageToken": 7}"#, "nextPageToken"),
        ] {
            let e = parse_page(body).unwrap_err();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}
