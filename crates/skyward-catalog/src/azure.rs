//! The Azure Retail Prices API (`https://prices.azure.com/api/retail/prices`,
//! no credentials) read into offerings. Pure: the caller fetches the
//! pages (following `NextPageLink`), this reads each page and folds the
//! items of all pages into offerings, with every item left out counted
//! under its reason.
//!
//! An item is a meter: one price of one SKU in one region. An offering
//! takes the on-demand price from the Linux pay-as-you-go meter
//! (`type: Consumption`, `skuName` without "Spot" or "Low Priority",
//! `productName` without "Windows") and the spot price from the "… Spot"
//! meter. Which accelerators a VM size has is not in the API: it comes
//! from the SKUs the catalog already knows (`known`).

use skyward_model::{Offering, RegionKey, Usd};
use std::collections::BTreeMap;

/// Where the prices come from (the default endpoint).
pub const ENDPOINT: &str = "https://prices.azure.com/api/retail/prices";

/// One meter of the API's `Items`, the fields read.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub currency: String,
    pub retail_price: f64,
    pub arm_region: String,
    pub arm_sku: String,
    pub sku_name: String,
    pub product_name: String,
    pub service_name: String,
    pub kind: String,
    pub unit: String,
}

/// One page: its items and the link to the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

/// Items one page may hold (the API serves 1,000; a page past this is
/// not the API's).
pub const ITEMS_PER_PAGE_MAX: usize = 100_000;

/// Reads one page of the API (`{"Items": [...], "NextPageLink": ...}`).
/// An error says what is wrong with the page.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = v
        .get("Items")
        .and_then(|i| i.as_array())
        .ok_or("no \"Items\" list (not a Retail Prices API page)")?;
    if items.len() > ITEMS_PER_PAGE_MAX {
        return Err(format!("more than {ITEMS_PER_PAGE_MAX} items"));
    }
    let next = match v.get("NextPageLink") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"NextPageLink\" is not a string or null".into()),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let s = |k: &str| -> Result<String, String> {
            it.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("Items[{i}]: \"{k}\" missing or not a string"))
        };
        let retail_price = it
            .get("retailPrice")
            .and_then(|x| x.as_f64())
            .filter(|p| p.is_finite())
            .ok_or_else(|| format!("Items[{i}]: \"retailPrice\" missing or not a number"))?;
        out.push(Item {
            currency: s("currencyCode")?,
            retail_price,
            arm_region: s("armRegionName")?,
            arm_sku: s("armSkuName")?,
            sku_name: s("skuName")?,
            product_name: s("productName")?,
            service_name: s("serviceName")?,
            kind: s("type")?,
            unit: s("unitOfMeasure")?,
        });
    }
    Ok(Page { items: out, next })
}

pub use crate::{known_sizes, Known};

/// Azure VM sizes with accelerators that the built-in price extract
/// (SkyPilot's Azure v6, US regions only) does not have: their
/// accelerators, vCPUs and memory from Microsoft Learn's size pages, so
/// that `catalog fetch` prices them. No price is made up for them here.
pub const SIZES_NOT_IN_EXTRACT: &[(&str, &str, u32, f64, f64, &str)] = &[
    (
        "Standard_ND96isr_H200_v5",
        "H200",
        8,
        96.0,
        1850.0,
        "Microsoft Learn, ND H200 v5 sizes: 96 vCPUs, 1,850 GiB, 8 H200",
    ),
    (
        "Standard_ND128isr_NDR_GB200_v6",
        "GB200",
        4,
        128.0,
        900.0,
        "Microsoft Learn, ND GB200 v6 sizes: 128 vCPUs, 900 GiB, 4 GB200 GPUs",
    ),
];

/// The Azure VM sizes `offerings` has, and [`SIZES_NOT_IN_EXTRACT`], by
/// lower-case SKU name.
pub fn known_skus(offerings: &[Offering]) -> Known {
    let mut out = known_sizes(offerings, "azure");
    for (sku, acc, n, vcpus, mem, _) in SIZES_NOT_IN_EXTRACT {
        out.insert(
            sku.to_ascii_lowercase(),
            (acc.to_string(), *n, *vcpus, *mem),
        );
    }
    out
}

/// Why an item is not a price of an offering (counted per reason).
pub const NOT_VM: &str = "not a virtual machine meter";
pub const NOT_CONSUMPTION: &str = "not pay-as-you-go (reservation, dev/test or savings plan)";
pub const NOT_HOURLY: &str = "not priced per hour";
pub const WINDOWS: &str = "Windows (license included)";
pub const LOW_PRIORITY: &str = "low priority (retired; spot replaces it)";
pub const UNKNOWN_SKU: &str = "VM size without accelerators, or one the catalog does not know";
pub const ZERO_PRICE: &str = "price 0 (not a price)";
pub const NOT_USD: &str = "not in USD";
pub const NO_ON_DEMAND_OR_SPOT: &str = "only meters that are not prices of the VM";

/// Folds the items of every page into offerings (sorted by region and
/// SKU), and counts each item left out under its reason.
pub fn offerings(
    items: &[Item],
    known: &Known,
    source: &str,
) -> (Vec<Offering>, BTreeMap<&'static str, u64>) {
    let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
    // (region, sku) → (the SKU as the API spells it, on-demand, spot)
    type Prices = (String, Option<Usd>, Option<Usd>);
    let mut prices: BTreeMap<(String, String), Prices> = BTreeMap::new();
    for it in items {
        let why = if it.service_name != "Virtual Machines" {
            Some(NOT_VM)
        } else if it.kind != "Consumption" {
            Some(NOT_CONSUMPTION)
        } else if it.unit != "1 Hour" {
            Some(NOT_HOURLY)
        } else if !it.currency.eq_ignore_ascii_case("USD") {
            Some(NOT_USD)
        } else if it.product_name.contains("Windows") {
            Some(WINDOWS)
        } else if it.sku_name.ends_with("Low Priority") {
            Some(LOW_PRIORITY)
        } else if !known.contains_key(&it.arm_sku.to_ascii_lowercase()) {
            Some(UNKNOWN_SKU)
        } else if it.retail_price <= 0.0 {
            Some(ZERO_PRICE)
        } else {
            None
        };
        if let Some(r) = why {
            *dropped.entry(r).or_insert(0) += 1;
            continue;
        }
        let Some(price) = Usd::from_f64_rounded(it.retail_price) else {
            *dropped.entry(ZERO_PRICE).or_insert(0) += 1;
            continue;
        };
        let e = prices
            .entry((
                it.arm_region.to_ascii_lowercase(),
                it.arm_sku.to_ascii_lowercase(),
            ))
            .or_insert((it.arm_sku.clone(), None, None));
        let slot = if it.sku_name.ends_with("Spot") {
            &mut e.2
        } else {
            &mut e.1
        };
        // Two meters for one price (a region listed twice): the lower.
        *slot = Some(slot.map_or(price, |p| p.min(price)));
    }
    let mut out = Vec::new();
    for ((region, sku), (spelled, on_demand, spot)) in prices {
        let Some((accelerator, count, vcpus, memory)) = known.get(&sku) else {
            continue;
        };
        if on_demand.is_none() && spot.is_none() {
            *dropped.entry(NO_ON_DEMAND_OR_SPOT).or_insert(0) += 1;
            continue;
        }
        out.push(Offering {
            region: RegionKey::new("azure", &region),
            sku: spelled,
            accelerator: accelerator.clone(),
            accelerator_count: *count,
            vcpus: *vcpus,
            memory_gib: *memory,
            on_demand_usd_per_hour: on_demand,
            spot_usd_per_hour: spot,
            zones: 1,
            source: source.to_string(),
        });
    }
    (out, dropped)
}
