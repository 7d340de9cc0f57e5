//! The contracts file for `skyward ledger`: spend, hourly and capacity
//! commitments. See `examples/contracts.yaml`.

use crate::error::SpecError;
use crate::fleet::OneOrMany;
use crate::locate::line_of;
use serde::Deserialize;
use skyward_ledger::contracts::{
    CapacityTerms, Contract, Eligibility, Floor, HourlyTerms, Instrument, ShortfallRule,
    SpendTerms, Terms,
};
use skyward_ledger::{Amount, Timestamp};
use std::collections::BTreeSet;

pub const CONTRACTS_MAX: usize = 10_000;
pub const TERM_MONTHS_MAX: u32 = 240;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    contracts: Vec<RawContract>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Spend,
    Hourly,
    Capacity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContract {
    name: String,
    kind: Kind,
    provider: String,
    start: String,
    #[serde(default)]
    term_months: Option<u32>,
    #[serde(default)]
    term_years: Option<u32>,
    // spend
    #[serde(default)]
    commit_usd: Option<f64>,
    #[serde(default)]
    discount_pct: Option<f64>,
    #[serde(default)]
    floors: Vec<RawFloor>,
    #[serde(default)]
    shortfall: Option<String>,
    #[serde(default)]
    eligible: Option<RawEligible>,
    // hourly
    #[serde(default)]
    instrument: Option<String>,
    #[serde(default)]
    commit_usd_per_hour: Option<f64>,
    #[serde(default)]
    commitment_id: Option<String>,
    // capacity
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    units: Option<u32>,
    #[serde(default)]
    rate_usd_per_unit_hour: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloor {
    year: u32,
    commit_usd: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEligible {
    #[serde(default)]
    regions: Option<OneOrMany>,
    #[serde(default)]
    services: Option<OneOrMany>,
    #[serde(default)]
    skus: Option<OneOrMany>,
}

fn money(v: f64) -> Result<Amount, String> {
    if v.is_finite() && (0.0..=1.0e15).contains(&v) {
        // Through the decimal text, so 38000000000.01 stays exact.
        Amount::parse(&format!("{v}")).map_err(|e| e.to_string())
    } else {
        Err("must be an amount from 0 to 1e15 USD".into())
    }
}

pub fn parse(text: &str, file: &str) -> Result<Vec<Contract>, SpecError> {
    let raw: RawFile = serde_yaml::from_str(text).map_err(|e| SpecError::from_yaml(file, &e))?;
    validate(raw.contracts, text, file)
}

/// The `contracts:` section of a file (a contracts file, or a scenario
/// that carries its contracts), validated.
pub(crate) fn validate(
    contracts: Vec<RawContract>,
    text: &str,
    file: &str,
) -> Result<Vec<Contract>, SpecError> {
    let raw = RawFile { contracts };
    if raw.contracts.len() > CONTRACTS_MAX {
        return Err(SpecError::at(
            file,
            None,
            "contracts",
            format!("more than {CONTRACTS_MAX} contracts"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.contracts.len());
    for (i, c) in raw.contracts.into_iter().enumerate() {
        let e = |key: &str, m: String| {
            SpecError::at(
                file,
                line_of(text, "contracts", i, Some(key)),
                &format!("contracts[{i}].{key}"),
                m,
            )
        };
        if c.name.trim().is_empty() || !names.insert(c.name.clone()) {
            return Err(e("name", format!("'{}' is empty or used twice", c.name)));
        }
        let provider = c.provider.trim().to_ascii_lowercase();
        if provider.is_empty() {
            return Err(e("provider", "must not be empty".into()));
        }
        let start = Timestamp::parse(&c.start).map_err(|m| e("start", m))?;
        let months = match (c.term_months, c.term_years) {
            (Some(m), None) => m,
            (None, Some(y)) => y.saturating_mul(12),
            (Some(_), Some(_)) => {
                return Err(e(
                    "term_months",
                    "give term_months or term_years, not both".into(),
                ))
            }
            (None, None) => {
                return Err(e(
                    "term_months",
                    "a term is required (term_months or term_years)".into(),
                ))
            }
        };
        if months == 0 || months > TERM_MONTHS_MAX {
            return Err(e(
                "term_months",
                format!("must be 1 to {TERM_MONTHS_MAX} months"),
            ));
        }
        let end = start.plus_months(i64::from(months));
        let discount = c.discount_pct.unwrap_or(0.0);
        if !(discount.is_finite() && (0.0..100.0).contains(&discount)) {
            return Err(e("discount_pct", "must be from 0 to below 100".into()));
        }
        let need = |v: Option<f64>, key: &str| -> Result<f64, SpecError> {
            v.ok_or_else(|| {
                e(
                    key,
                    format!("required for kind {:?}", c.kind).to_lowercase(),
                )
            })
        };
        let terms = match c.kind {
            Kind::Spend => {
                let commit =
                    money(need(c.commit_usd, "commit_usd")?).map_err(|m| e("commit_usd", m))?;
                let mut floors = Vec::new();
                for f in &c.floors {
                    if f.year == 0 || f.year > months.div_ceil(12) {
                        return Err(e(
                            "floors",
                            format!("year {} is outside the {}-month term", f.year, months),
                        ));
                    }
                    floors.push(Floor {
                        year: f.year,
                        commit: money(f.commit_usd).map_err(|m| e("floors", m))?,
                    });
                }
                let floor_sum: Amount = floors.iter().map(|f| f.commit).sum();
                if floor_sum > commit {
                    return Err(e(
                        "floors",
                        format!("floors add up to {floor_sum}, more than the commitment {commit}"),
                    ));
                }
                let shortfall = match c.shortfall.as_deref().unwrap_or("term-end") {
                    "term-end" => ShortfallRule::TermEnd,
                    "yearly" => ShortfallRule::Yearly,
                    other => {
                        return Err(e(
                            "shortfall",
                            format!("'{other}' is not term-end or yearly"),
                        ))
                    }
                };
                let eligible = match c.eligible {
                    Some(el) => Eligibility {
                        regions: el.regions.map(OneOrMany::into_vec).unwrap_or_default(),
                        services: el.services.map(OneOrMany::into_vec).unwrap_or_default(),
                        skus: el.skus.map(OneOrMany::into_vec).unwrap_or_default(),
                    },
                    None => Eligibility::default(),
                };
                Terms::Spend(SpendTerms {
                    commit,
                    discount_pct: discount,
                    floors,
                    shortfall,
                    eligible,
                })
            }
            Kind::Hourly => {
                let instrument = match c.instrument.as_deref() {
                    Some("aws-compute-savings-plan") => Instrument::AwsComputeSavingsPlan,
                    Some("aws-ec2-instance-savings-plan") => Instrument::AwsEc2InstanceSavingsPlan,
                    Some("azure-savings-plan") => Instrument::AzureSavingsPlan,
                    Some("gcp-flexible-cud") => Instrument::GcpFlexibleCud,
                    other => {
                        return Err(e(
                            "instrument",
                            format!("{other:?}: one of aws-compute-savings-plan, aws-ec2-instance-savings-plan, azure-savings-plan, gcp-flexible-cud"),
                        ))
                    }
                };
                let per_hour = money(need(c.commit_usd_per_hour, "commit_usd_per_hour")?)
                    .map_err(|m| e("commit_usd_per_hour", m))?;
                Terms::Hourly(HourlyTerms {
                    instrument,
                    commit_per_hour: per_hour,
                    discount_pct: discount,
                    commitment_id: c.commitment_id.clone(),
                })
            }
            Kind::Capacity => {
                let units = c
                    .units
                    .filter(|u| *u > 0)
                    .ok_or_else(|| e("units", "a positive number of units is required".into()))?;
                let rate = money(need(c.rate_usd_per_unit_hour, "rate_usd_per_unit_hour")?)
                    .map_err(|m| e("rate_usd_per_unit_hour", m))?;
                Terms::Capacity(CapacityTerms {
                    region: c
                        .region
                        .clone()
                        .ok_or_else(|| e("region", "required for a capacity commitment".into()))?,
                    sku: c
                        .sku
                        .clone()
                        .ok_or_else(|| e("sku", "required for a capacity commitment".into()))?,
                    units,
                    rate_per_unit_hour: rate,
                    commitment_id: c.commitment_id.clone(),
                })
            }
        };
        out.push(Contract {
            name: c.name,
            provider,
            start,
            end,
            terms,
        });
    }
    Ok(out)
}
