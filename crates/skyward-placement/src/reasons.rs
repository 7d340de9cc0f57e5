//! Why an offering was rejected. Exported constants, so tests and tools can
//! match them (Kubernetes' lesson). Order here is the order of the filter
//! chain: cheap, coarse checks first.

pub const WRONG_ACCELERATOR: &str = "wrong accelerator";
/// The workload's `variants:` give no way to run on the accelerator's
/// stack (shown with the accelerators' names: "no variant for Trainium2").
pub const NO_VARIANT: &str = "no variant for the accelerator's stack";
pub const PROVIDER_NOT_ALLOWED: &str = "provider not allowed";
pub const REGION_NOT_ALLOWED: &str = "region not allowed";
pub const RESIDENCY: &str = "region outside residency";
pub const COMPLIANCE: &str = "region lacks required certification";
pub const LATENCY: &str = "latency bound exceeded";
pub const NO_PRICE: &str = "no price for the allowed pricing";
pub const OVER_HOURLY_CAP: &str = "over max_hourly_usd";
pub const OVER_QUOTA: &str = "gang larger than quota";
pub const POOL_TOO_SMALL: &str = "reserved pool smaller than the gang";
pub const NO_SPEED: &str = "no throughput figure to scale hours";
pub const SPOT_REQUIRED: &str = "spot required (reserved capacity is not spot)";
pub const PRUNED: &str = "dominated by a cheaper option with the same constraints";

/// The filter chain in order, for stable output.
pub const ORDER: &[&str] = &[
    WRONG_ACCELERATOR,
    NO_VARIANT,
    PROVIDER_NOT_ALLOWED,
    REGION_NOT_ALLOWED,
    RESIDENCY,
    COMPLIANCE,
    LATENCY,
    NO_SPEED,
    NO_PRICE,
    OVER_HOURLY_CAP,
    OVER_QUOTA,
    SPOT_REQUIRED,
    POOL_TOO_SMALL,
];

/// The sentences that say why a workload went where it went, shared by
/// `skyward explain` (a batch plan) and the server's scheduler (`skyward
/// status ID`), so both say it in the same words.
pub mod why {
    use skyward_model::Usd;

    pub const CHEAPEST: &str = "cheapest feasible option";

    pub fn cheapest_across(alternatives: usize) -> String {
        format!("cheapest feasible option across {alternatives} accelerator alternatives")
    }

    /// Spend that a commitment bills either way.
    pub fn inside_commitment(list: Usd, commitment: &str, due: Usd) -> String {
        format!(
            "its {list} list spend falls inside the unspent part of commitment '{commitment}' ({due} due either way), so it costs the fleet nothing extra"
        )
    }

    pub fn discounted(
        commitment: &str,
        discount_pct: f64,
        due: Usd,
        fleet: Usd,
        list: Usd,
    ) -> String {
        format!(
            "commitment '{commitment}' ({discount_pct}% off list, {due} due) makes its fleet cost {fleet} against {list} at list"
        )
    }

    /// Capacity paid for whether used or not.
    pub fn prepaid(pool: &str, adds: Usd) -> String {
        format!(
            "runs on prepaid reserved capacity '{pool}': it adds {adds} (egress only) instead of paying by the hour"
        )
    }

    pub fn cheaper_but_costs_more(label: &str, list: Usd, fleet: Usd, chosen: Usd) -> String {
        format!(
            "{label} is cheaper at list ({list}) but would cost the fleet {fleet}, against {chosen} for the chosen option"
        )
    }

    pub fn cheaper_but_blocked(label: &str, list: Usd, blocked_by: &str) -> String {
        format!("{label} is cheaper at list ({list}) but blocked: {blocked_by}")
    }

    pub fn runner_up(label: &str, fleet: Usd, more: Usd) -> String {
        format!("runner-up: {label} would cost the fleet {fleet} ({more} more)")
    }

    /// The rates hours were scaled by (in the class's unit, or relative).
    pub fn speeds_used(rates: &std::collections::BTreeMap<String, f64>) -> String {
        let list: Vec<String> = rates
            .iter()
            .map(|(alt, r)| format!("{alt} {}", crate::reasons::short(*r)))
            .collect();
        format!(
            "speeds used: {} (learned from the class's runs, or the job's throughput:)",
            list.join(", ")
        )
    }

    pub const NO_OTHER: &str = "no other option fits alongside the rest of the fleet";
}

/// A rate in at most four significant figures (`110`, `90.91`, `0.3155`).
pub fn short(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let digits = if x.abs() >= 1000.0 {
        0
    } else {
        (3 - x.abs().max(1e-12).log10().floor() as i32).clamp(0, 8) as usize
    };
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod short_tests {
    #[test]
    fn four_significant_figures_without_trailing_zeros() {
        for (x, want) in [
            (110.0, "110"),
            (90.909_09, "90.91"),
            (0.315_468, "0.3155"),
            (12_345.6, "12346"),
            (2.0, "2"),
        ] {
            assert_eq!(super::short(x), want, "{x}");
        }
    }
}
