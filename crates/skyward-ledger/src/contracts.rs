//! Commitment instruments, as validated values (the YAML edge is in
//! `skyward-spec`).

use crate::amount::Amount;
use crate::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contract {
    pub name: String,
    /// Skyward provider id (aws, azure, gcp, oci, …).
    pub provider: String,
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    pub terms: Terms,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Terms {
    Spend(SpendTerms),
    Hourly(HourlyTerms),
    Capacity(CapacityTerms),
}

/// A spend commitment (AWS EDP/PPA, Azure MACC): a total due over the term,
/// optionally with yearly floors; a discount on eligible spend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendTerms {
    pub commit: Amount,
    pub discount_pct: f64,
    /// Minimum spend per contract year (year 1 = first 12 months).
    pub floors: Vec<Floor>,
    pub shortfall: ShortfallRule,
    pub eligible: Eligibility,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    pub year: u32,
    pub commit: Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortfallRule {
    /// The gap to the total is billed at the end of the term.
    TermEnd,
    /// The gap to each year's floor is billed at that year's end.
    Yearly,
}

/// Empty lists mean "all".
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Eligibility {
    pub regions: Vec<String>,
    pub services: Vec<String>,
    pub skus: Vec<String>,
}

impl Eligibility {
    pub fn admits(&self, region: &str, service: &str, sku: &str) -> bool {
        let ok = |list: &[String], v: &str| {
            list.is_empty() || list.iter().any(|x| x.eq_ignore_ascii_case(v))
        };
        ok(&self.regions, region) && ok(&self.services, service) && ok(&self.skus, sku)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Instrument {
    /// AWS EC2 Instance Savings Plan: applied before Compute SPs.
    AwsEc2InstanceSavingsPlan,
    /// AWS Compute Savings Plan.
    AwsComputeSavingsPlan,
    /// Azure savings plan for compute.
    AzureSavingsPlan,
    /// GCP spend-based (flexible) committed use discount.
    GcpFlexibleCud,
}

impl Instrument {
    /// The name used in contract files.
    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::AwsEc2InstanceSavingsPlan => "aws-ec2-instance-savings-plan",
            Instrument::AwsComputeSavingsPlan => "aws-compute-savings-plan",
            Instrument::AzureSavingsPlan => "azure-savings-plan",
            Instrument::GcpFlexibleCud => "gcp-flexible-cud",
        }
    }

    /// Order of application within one provider's hour (AWS applies
    /// Reserved Instances first, then EC2 Instance SPs, then Compute SPs).
    pub fn priority(self) -> u8 {
        match self {
            Instrument::AwsEc2InstanceSavingsPlan => 1,
            Instrument::AwsComputeSavingsPlan
            | Instrument::AzureSavingsPlan
            | Instrument::GcpFlexibleCud => 2,
        }
    }
}

/// An hourly commitment: unused commitment is lost each hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourlyTerms {
    pub instrument: Instrument,
    /// As the instrument states it: AWS and Azure commit the discounted
    /// $/hour paid; GCP's flexible CUD commits on-demand-equivalent $/hour.
    pub commit_per_hour: Amount,
    pub discount_pct: f64,
    /// FOCUS CommitmentDiscountId, to read actual Used/Unused rows.
    pub commitment_id: Option<String>,
}

impl HourlyTerms {
    /// What is paid each hour, used or not.
    pub fn fee_per_hour(&self) -> Amount {
        match self.instrument {
            Instrument::GcpFlexibleCud => {
                scale(self.commit_per_hour, 1.0 - self.discount_pct / 100.0)
            }
            _ => self.commit_per_hour,
        }
    }

    /// On-demand (list) spend one hour of commitment can cover.
    pub fn covers_list_per_hour(&self) -> Amount {
        match self.instrument {
            Instrument::GcpFlexibleCud => self.commit_per_hour,
            _ => scale(
                self.commit_per_hour,
                1.0 / (1.0 - self.discount_pct / 100.0),
            ),
        }
    }
}

/// Prepaid capacity: units of a SKU in a region, paid whether used or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityTerms {
    pub region: String,
    pub sku: String,
    pub units: u32,
    pub rate_per_unit_hour: Amount,
    pub commitment_id: Option<String>,
}

/// `a × factor`, rounded once to the pico-dollar.
pub fn scale(a: Amount, factor: f64) -> Amount {
    // Split to keep precision on large amounts: whole dollars and the rest.
    let per = crate::amount::PICOS_PER_USD;
    let whole = a.0 / per;
    let frac = a.0 % per;
    let w = (whole as f64 * factor * per as f64).round() as i128;
    let f = (frac as f64 * factor).round() as i128;
    Amount(w + f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hourly(instrument: Instrument, commit: &str, pct: f64) -> HourlyTerms {
        HourlyTerms {
            instrument,
            commit_per_hour: Amount::parse(commit).unwrap(),
            discount_pct: pct,
            commitment_id: None,
        }
    }

    #[test]
    fn gcp_flexible_cud_fee_is_the_discounted_commitment() {
        // Google Cloud docs: a $50/hour spend-based commitment at 25% costs
        // $37.50/hour, and covers $50/hour of on-demand spend.
        let t = hourly(Instrument::GcpFlexibleCud, "50", 25.0);
        assert_eq!(t.fee_per_hour(), Amount::parse("37.50").unwrap());
        assert_eq!(t.covers_list_per_hour(), Amount::parse("50").unwrap());
    }

    #[test]
    fn aws_savings_plan_commits_the_fee() {
        let t = hourly(Instrument::AwsComputeSavingsPlan, "75", 25.0);
        assert_eq!(t.fee_per_hour(), Amount::parse("75").unwrap());
        assert_eq!(t.covers_list_per_hour(), Amount::parse("100").unwrap());
    }

    #[test]
    fn scale_is_exact_on_large_amounts() {
        let big = Amount::parse("38000000000").unwrap();
        assert_eq!(scale(big, 0.88), Amount::parse("33440000000").unwrap());
    }
}
