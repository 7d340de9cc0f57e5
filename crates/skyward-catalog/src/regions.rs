//! Region attributes by rule: geography (for residency) and certifications
//! (for compliance). Rules rather than a frozen list, so that regions in an
//! imported catalog get attributes too; anything unknown gets geography
//! `unknown` and no certifications, which no residency or compliance
//! constraint accepts (the safe side of a hard constraint).
//!
//! Sources (read 2026-11): AWS "Regions and Zones" and "Services in Scope
//! by Compliance Program" (US East/West: FedRAMP Moderate; GovCloud:
//! FedRAMP High); Azure "Azure geographies" and "FedRAMP - Azure
//! Compliance" (Azure commercial: FedRAMP High P-ATO; Azure Government:
//! FedRAMP High); Google Cloud "Cloud locations" and "FedRAMP" (US regions:
//! FedRAMP High); Oracle "OCI regions" and "OCI compliance" (US commercial:
//! FedRAMP Moderate here, being conservative; US Government regions:
//! FedRAMP High); Lambda "Security" (SOC 2 Type II). All four hyperscalers
//! sign HIPAA BAAs covering their commercial regions.

use skyward_model::{RegionInfo, RegionKey};

const SOURCE: &str = "skyward region rules (crates/skyward-catalog/src/regions.rs)";

/// Geography code for a provider region; `unknown` when no rule matches.
pub fn geography(provider: &str, region: &str) -> &'static str {
    let r = region.to_ascii_lowercase();
    let p = provider.to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|x| r.starts_with(x));
    match p.as_str() {
        "aws" => match r.as_str() {
            "eu-west-2" => "uk",
            "eu-central-2" => "ch",
            "ap-northeast-1" | "ap-northeast-3" => "jp",
            "ap-northeast-2" => "kr",
            "ap-southeast-1" => "sg",
            "ap-southeast-2" | "ap-southeast-4" => "au",
            "ap-southeast-3" => "id",
            "ap-southeast-5" => "my",
            "ap-east-1" => "hk",
            "me-south-1" => "bh",
            "me-central-1" => "ae",
            "il-central-1" => "il",
            "sa-east-1" => "br",
            "af-south-1" => "za",
            _ if starts(&["us-"]) => "us",
            _ if starts(&["ca-"]) => "ca",
            _ if starts(&["mx-"]) => "mx",
            _ if starts(&["eu-"]) => "eu",
            _ if starts(&["ap-south-"]) => "in",
            _ => "unknown",
        },
        "gcp" => match r.as_str() {
            "europe-west2" => "uk",
            "europe-west6" => "ch",
            "asia-east1" => "tw",
            "asia-east2" => "hk",
            "asia-northeast1" | "asia-northeast2" => "jp",
            "asia-northeast3" => "kr",
            "asia-southeast1" => "sg",
            "asia-southeast2" => "id",
            "me-west1" => "il",
            "me-central1" => "qa",
            "me-central2" => "sa",
            "southamerica-east1" => "br",
            "southamerica-west1" => "cl",
            "northamerica-south1" => "mx",
            "africa-south1" => "za",
            _ if starts(&["us-"]) => "us",
            _ if starts(&["northamerica-northeast"]) => "ca",
            _ if starts(&["europe-"]) => "eu",
            _ if starts(&["asia-south"]) => "in",
            _ if starts(&["australia-"]) => "au",
            _ => "unknown",
        },
        "azure" => match r.as_str() {
            "eastus" | "eastus2" | "westus" | "westus2" | "westus3" | "centralus"
            | "northcentralus" | "southcentralus" | "westcentralus" => "us",
            "northeurope" | "westeurope" | "francecentral" | "francesouth"
            | "germanywestcentral" | "germanynorth" | "swedencentral" | "italynorth"
            | "polandcentral" | "spaincentral" => "eu",
            "uksouth" | "ukwest" => "uk",
            "switzerlandnorth" | "switzerlandwest" => "ch",
            "norwayeast" | "norwaywest" => "no",
            "japaneast" | "japanwest" => "jp",
            "koreacentral" | "koreasouth" => "kr",
            "eastasia" => "hk",
            "southeastasia" => "sg",
            "australiaeast" | "australiasoutheast" | "australiacentral" => "au",
            "centralindia" | "southindia" | "westindia" => "in",
            "uaenorth" | "uaecentral" => "ae",
            "qatarcentral" => "qa",
            "southafricanorth" => "za",
            "brazilsouth" => "br",
            "canadacentral" | "canadaeast" => "ca",
            _ if starts(&["usgov", "usdod"]) => "us",
            _ => "unknown",
        },
        "oci" => match r.as_str() {
            "eu-zurich-1" => "ch",
            "ap-tokyo-1" | "ap-osaka-1" => "jp",
            "ap-seoul-1" | "ap-chuncheon-1" => "kr",
            "ap-mumbai-1" | "ap-hyderabad-1" => "in",
            "ap-singapore-1" | "ap-singapore-2" => "sg",
            "ap-sydney-1" | "ap-melbourne-1" => "au",
            "ap-batam-1" => "id",
            "ap-kulai-2" => "my",
            "sa-saopaulo-1" | "sa-vinhedo-1" => "br",
            "sa-santiago-1" | "sa-valparaiso-1" => "cl",
            "sa-bogota-1" => "co",
            "me-dubai-1" | "me-abudhabi-1" => "ae",
            "me-jeddah-1" | "me-riyadh-1" => "sa",
            "il-jerusalem-1" => "il",
            "af-johannesburg-1" => "za",
            "af-casablanca-1" => "ma",
            _ if starts(&["us-"]) => "us",
            _ if starts(&["ca-"]) => "ca",
            _ if starts(&["mx-"]) => "mx",
            _ if starts(&["uk-"]) => "uk",
            _ if starts(&["eu-"]) => "eu",
            _ => "unknown",
        },
        "lambda" => match r.as_str() {
            "europe-central-1" | "europe-south-1" => "eu",
            "asia-northeast-1" => "jp",
            "asia-northeast-2" => "kr",
            "asia-south-1" => "in",
            "australia-east-1" => "au",
            "me-west-1" => "il",
            _ if starts(&["us-"]) => "us",
            _ => "unknown",
        },
        _ => "unknown",
    }
}

/// Coarse continent of a geography, for default network figures.
pub fn continent(geography: &str) -> &'static str {
    match geography {
        "us" | "ca" | "mx" => "north-america",
        "br" | "cl" | "co" => "south-america",
        "eu" | "uk" | "ch" | "no" => "europe",
        "jp" | "kr" | "tw" | "hk" | "sg" | "id" | "my" | "in" => "asia",
        "au" => "oceania",
        "ae" | "bh" | "qa" | "sa" | "il" => "middle-east",
        "za" | "ma" => "africa",
        _ => "unknown",
    }
}

fn is_government(provider: &str, region: &str) -> bool {
    match provider {
        "aws" => region.starts_with("us-gov-"),
        "azure" => region.starts_with("usgov") || region.starts_with("usdod"),
        "oci" => {
            region.starts_with("us-langley")
                || region.starts_with("us-luke")
                || region.starts_with("us-gov")
        }
        _ => false,
    }
}

/// Certifications for a region, by rule (see the module docs for sources).
pub fn compliance(provider: &str, region: &str) -> Vec<String> {
    let p = provider.to_ascii_lowercase();
    let r = region.to_ascii_lowercase();
    let geo = geography(&p, &r);
    let mut certs: Vec<&str> = Vec::new();
    match p.as_str() {
        "aws" | "azure" | "gcp" | "oci" => {
            certs.extend(["hipaa", "iso27001", "soc2"]);
            if geo == "us" {
                let fedramp = if is_government(&p, &r) {
                    "fedramp-high"
                } else {
                    match p.as_str() {
                        "azure" | "gcp" => "fedramp-high",
                        _ => "fedramp-moderate",
                    }
                };
                certs.push(fedramp);
            }
            if is_government(&p, &r) {
                certs.push("itar");
            }
        }
        "lambda" => certs.push("soc2"),
        _ => {}
    }
    if geo == "eu" {
        certs.push("gdpr");
    }
    certs.sort_unstable();
    certs.into_iter().map(String::from).collect()
}

pub fn region_info(provider: &str, region: &str) -> RegionInfo {
    let geo = geography(provider, region);
    RegionInfo {
        key: RegionKey::new(provider, region),
        geography: geo.to_string(),
        continent: continent(geo).to_string(),
        compliance: compliance(provider, region),
        source: SOURCE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geography_table() {
        let cases = [
            ("aws", "us-east-1", "us"),
            ("aws", "eu-west-2", "uk"),
            ("aws", "eu-west-1", "eu"),
            ("aws", "us-gov-west-1", "us"),
            ("gcp", "europe-west4", "eu"),
            ("gcp", "europe-west2", "uk"),
            ("gcp", "us-central1", "us"),
            ("azure", "westeurope", "eu"),
            ("azure", "eastus", "us"),
            ("oci", "eu-frankfurt-1", "eu"),
            ("oci", "uk-london-1", "uk"),
            ("lambda", "europe-central-1", "eu"),
            ("mars", "olympus-1", "unknown"),
        ];
        for (p, r, g) in cases {
            assert_eq!(geography(p, r), g, "{p}:{r}");
        }
    }

    #[test]
    fn compliance_table() {
        assert!(region_info("aws", "us-gov-west-1").has_certification("fedramp-high"));
        assert!(!region_info("aws", "us-east-1").has_certification("fedramp-high"));
        assert!(region_info("aws", "us-east-1").has_certification("fedramp-moderate"));
        assert!(region_info("azure", "eastus").has_certification("fedramp-moderate"));
        assert!(region_info("gcp", "europe-west4").has_certification("hipaa"));
        assert!(!region_info("lambda", "us-east-1").has_certification("hipaa"));
        assert!(region_info("mars", "x").compliance.is_empty());
    }
}
