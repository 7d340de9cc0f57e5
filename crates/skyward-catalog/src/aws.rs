//! The AWS Price List bulk API (no credentials): the EC2 offer's region
//! index (`/offers/v1.0/aws/AmazonEC2/current/region_index.json`), then
//! each region's offer file. Pure: the caller fetches, this reads.
//!
//! An offering takes its on-demand price from the product that is a
//! Linux, shared-tenancy, no-pre-installed-software instance of a type
//! the catalog knows (`Compute Instance`, capacity status `Used`) and its
//! `OnDemand` term's hourly price. The bulk files carry no spot prices.

use serde::Deserialize;
use skyward_model::{Offering, RegionKey, Usd};
use std::collections::{BTreeMap, HashMap};

/// The price list's host.
pub const ENDPOINT: &str = "https://pricing.us-east-1.amazonaws.com";
/// The EC2 offer's region index, under the endpoint.
pub const REGION_INDEX: &str = "/offers/v1.0/aws/AmazonEC2/current/region_index.json";

#[derive(Deserialize)]
struct RegionIndex {
    regions: BTreeMap<String, IndexRegion>,
}

#[derive(Deserialize)]
struct IndexRegion {
    #[serde(rename = "regionCode")]
    region_code: String,
    #[serde(rename = "currentVersionUrl")]
    current_version_url: String,
}

/// (region, path of its offer file) from the region index.
pub fn parse_region_index(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let idx: RegionIndex =
        serde_json::from_slice(body).map_err(|e| format!("not an EC2 region index: {e}"))?;
    let mut out = Vec::new();
    for r in idx.regions.into_values() {
        if !r.current_version_url.starts_with('/') {
            return Err(format!(
                "region {}: currentVersionUrl '{}' is not a path on the price list's host",
                r.region_code,
                r.current_version_url.chars().take(200).collect::<String>()
            ));
        }
        out.push((r.region_code, r.current_version_url));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Offer {
    products: HashMap<String, Product>,
    terms: Terms,
}

#[derive(Deserialize)]
struct Product {
    #[serde(rename = "productFamily", default)]
    family: String,
    #[serde(default)]
    attributes: Attributes,
}

/// The attributes read (a product has some forty; the rest are skipped
/// while parsing, not kept: a region's offer file is hundreds of MB).
#[derive(Deserialize, Default)]
struct Attributes {
    #[serde(rename = "instanceType", default)]
    instance_type: String,
    #[serde(rename = "operatingSystem", default)]
    operating_system: String,
    #[serde(default)]
    tenancy: String,
    #[serde(rename = "preInstalledSw", default)]
    pre_installed_sw: String,
    #[serde(default)]
    capacitystatus: String,
}

#[derive(Deserialize)]
struct Terms {
    #[serde(rename = "OnDemand", default)]
    on_demand: HashMap<String, HashMap<String, Term>>,
}

#[derive(Deserialize)]
struct Term {
    #[serde(rename = "priceDimensions")]
    dimensions: HashMap<String, Dimension>,
}

#[derive(Deserialize)]
struct Dimension {
    unit: String,
    #[serde(rename = "pricePerUnit")]
    price: PricePerUnit,
}

#[derive(Deserialize)]
struct PricePerUnit {
    #[serde(rename = "USD", default)]
    usd: Option<String>,
}

pub const NOT_INSTANCE: &str = "not a compute instance";
pub const UNKNOWN_TYPE: &str =
    "instance type without accelerators, or one the catalog does not know";
pub const NOT_LINUX_SHARED: &str =
    "not Linux on shared tenancy without pre-installed software (or not capacity status Used)";
pub const NO_HOURLY_PRICE: &str = "no hourly on-demand USD price";
pub const ZERO_PRICE: &str = "price 0 (not a price)";

/// What one region's offer file gave: its offerings, each product left
/// out counted under its reason, and how many products it has.
pub type OfferRead = (Vec<Offering>, BTreeMap<&'static str, u64>, usize);

/// The offerings of one region's offer file (`region` as the index names
/// it), and each product left out counted under its reason.
pub fn parse_offer(
    body: &[u8],
    region: &str,
    known: &crate::Known,
    source: &str,
) -> Result<OfferRead, String> {
    let offer: Offer =
        serde_json::from_slice(body).map_err(|e| format!("not an EC2 offer file: {e}"))?;
    let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut best: BTreeMap<String, (String, Usd)> = BTreeMap::new();
    for (sku, p) in &offer.products {
        let a = &p.attributes;
        let why = if !p.family.starts_with("Compute Instance") {
            Some(NOT_INSTANCE)
        } else if !known.contains_key(&a.instance_type.to_ascii_lowercase()) {
            Some(UNKNOWN_TYPE)
        } else if a.operating_system != "Linux"
            || a.tenancy != "Shared"
            || a.pre_installed_sw != "NA"
            || !matches!(a.capacitystatus.as_str(), "Used" | "")
        {
            Some(NOT_LINUX_SHARED)
        } else {
            None
        };
        if let Some(r) = why {
            *dropped.entry(r).or_insert(0) += 1;
            continue;
        }
        let price = offer.terms.on_demand.get(sku).and_then(|terms| {
            terms
                .values()
                .flat_map(|t| t.dimensions.values())
                .find_map(|d| {
                    (d.unit == "Hrs")
                        .then_some(d.price.usd.as_ref())
                        .flatten()
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
        });
        let Some(price) = price else {
            *dropped.entry(NO_HOURLY_PRICE).or_insert(0) += 1;
            continue;
        };
        let Some(usd) = Usd::from_f64_rounded(price).filter(|u| *u > Usd::ZERO) else {
            *dropped.entry(ZERO_PRICE).or_insert(0) += 1;
            continue;
        };
        let t = a.instance_type.clone();
        let e = best.entry(t.to_ascii_lowercase()).or_insert((t, usd));
        e.1 = e.1.min(usd);
    }
    let mut out = Vec::new();
    for (lower, (spelled, usd)) in best {
        let Some((accelerator, count, vcpus, memory)) = known.get(&lower) else {
            continue;
        };
        out.push(Offering {
            region: RegionKey::new("aws", region),
            sku: spelled,
            accelerator: accelerator.clone(),
            accelerator_count: *count,
            vcpus: *vcpus,
            memory_gib: *memory,
            on_demand_usd_per_hour: Some(usd),
            spot_usd_per_hour: None,
            zones: 1,
            source: source.to_string(),
        });
    }
    Ok((out, dropped, offer.products.len()))
}

/// The AWS instance types `offerings` has, by lower-case name.
pub fn known_types(offerings: &[Offering]) -> crate::Known {
    crate::known_sizes(offerings, "aws")
}
