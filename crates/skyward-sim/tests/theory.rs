#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The simulator against independent computations: queueing theory
//! (Erlang C), money worked by hand, and itself (determinism).

use skyward_sim::{simulate, Policy, Scenario};

fn scenario(yaml: &str) -> Scenario {
    match skyward_spec::scenario::parse(yaml, "test.yaml") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn quiet(_: &skyward_sim::Progress) {}

/// Erlang C: the probability an arrival waits in an M/M/c queue with
/// offered load `a` = λ/μ, and the mean wait Wq = C / (cμ − λ).
fn erlang_c_wait_h(c: u32, lambda_per_h: f64, mu_per_h: f64) -> f64 {
    let a = lambda_per_h / mu_per_h;
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        if k > 0 {
            term *= a / f64::from(k);
        }
        sum += term;
    }
    let last = term * a / f64::from(c) * f64::from(c) / (f64::from(c) - a);
    let p_wait = last / (sum + last);
    p_wait / (f64::from(c) * mu_per_h - lambda_per_h)
}

/// Four identical accelerators, Poisson arrivals at 3 an hour, exponential
/// work of mean 1 hour, one accelerator each, first come first served:
/// an M/M/4 queue at 75 % load. Erlang C gives a mean wait of 0.5094 h
/// (C = 13.5 / 26.5). Thirty years (about 790,000 arrivals) through the
/// real core must come within 2 %.
#[test]
fn an_mmc_queue_waits_as_erlang_c_says() {
    let sc = scenario(
        "name: mmc
start: 2026-01-01
years: 30
policies: [skyward]
options: {cycle_min_gap_s: 0, walltime_step_pct: 0}
sites:
  - {name: s, provider: aws, region: us-east-1, accelerator: H100, accelerators: 4, price_usd_per_accelerator_hour: 1}
demand:
  - {name: q, kind: batch, arrivals_per_hour: 3, accelerators: H100:1, hours: {dist: exponential, mean: 1}}
",
    );
    let want_h = erlang_c_wait_h(4, 3.0, 1.0);
    assert!((want_h - 13.5 / 26.5).abs() < 1e-9, "{want_h}");
    let r = simulate(&sc, &[], 7, &mut quiet);
    let p = &r.policies[0];
    let got_h = p.total.delay_s.mean / 3600.0;
    let n = p.total.delay_s.count;
    assert!(n > 700_000, "{n} arrivals started");
    let err = (got_h - want_h).abs() / want_h;
    eprintln!("M/M/4: mean wait {got_h:.4} h, Erlang C {want_h:.4} h, {n} jobs");
    assert!(
        err < 0.02,
        "mean wait {got_h:.4} h against Erlang C's {want_h:.4} h ({:.2} % off, {n} jobs)",
        err * 100.0
    );
}

const HAND: &str = "name: by-hand
start: 2026-01-01
years: 1
policies: [skyward, cheapest-per-task]
sites:
  - name: s
    provider: aws
    region: us-east-1
    accelerator: H100
    accelerators: 8
    price_usd_per_accelerator_hour: 2.5
    price_steps: [{from: 2026-07-01, usd_per_accelerator_hour: 2.0}]
demand:
  - {name: daily, kind: train, every_hours: 24, accelerators: H100:8, hours: 10}
contracts:
  - {name: edp, kind: spend, provider: aws, start: 2026-01-01, term_years: 1, commit_usd: 100000, discount_pct: 10, shortfall: term-end}
";

/// A year of one 8-accelerator, 10-hour job a day (365 jobs, each starting
/// at midnight) on one site at $2.50 an accelerator-hour, dropping to
/// $2.00 from 1 July. By hand:
///   1 Jan – 30 Jun: 181 jobs × 80 acc-h × $2.50 = $36,200
///   1 Jul – 31 Dec: 184 jobs × 80 acc-h × $2.00 = $29,440
///   list $65,640; billed at the contract's 10 % off: $59,076;
///   shortfall of the $100,000 commitment at the term's end: $40,924;
///   paid $100,000: the effective discount is 1 − 100,000/65,640 = −52.3 %.
#[test]
fn a_deterministic_year_costs_what_the_hand_computation_says_to_the_cent() {
    let sc = scenario(HAND);
    let r = simulate(&sc, &[], 1, &mut quiet);
    for p in &r.policies {
        let t = &p.total;
        assert_eq!(t.list_usd.to_string(), "$65,640.00", "{}", p.policy);
        assert_eq!(t.billed_usd.to_string(), "$59,076.00", "{}", p.policy);
        assert_eq!(t.shortfall_usd.to_string(), "$40,924.00", "{}", p.policy);
        assert_eq!(t.cost_usd.to_string(), "$100,000.00", "{}", p.policy);
        let want = (1.0 - 100_000.0 / 65_640.0) * 100.0;
        assert!(
            (t.effective_discount_pct - want).abs() < 1e-6,
            "{} against {want}",
            t.effective_discount_pct
        );
        assert_eq!(t.completed, 365);
        assert_eq!(t.accelerator_hours.get("H100").copied(), Some(365.0 * 80.0));
        assert_eq!(t.delay_s.max, 0.0);
        assert_eq!(p.contracts[0].status, "short");
        assert_eq!(p.contracts[0].burned_usd.to_string(), "$59,076.00");
    }
}

/// The hand-worked year above, swept over commitment size and demand. By
/// hand: at 1× demand list is $65,640 and billed $59,076; at 2× (a job
/// every 12 hours: 362 jobs at $200, then 368 at $160) list is $131,280 and
/// billed $118,152. Paid = max(billed, commitment):
///   commit 50 % ($50,000):  $59,076 and $118,152
///   commit 100 %:           $100,000 and $118,152
///   commit 150 %:           $150,000 and $150,000
#[test]
fn a_sweep_over_commitment_and_demand_matches_the_hand_computation() {
    let sc = scenario(HAND);
    let axes = [
        skyward_sim::sweep::Axis::parse("commit=50,100,150").unwrap(),
        skyward_sim::sweep::Axis::parse("demand=1,2").unwrap(),
    ];
    let r =
        skyward_sim::sweep::sweep(&sc, &axes, &[Policy::CheapestPerTask], 1, &mut quiet).unwrap();
    let got: Vec<(f64, f64, String)> = r
        .points
        .iter()
        .map(|p| {
            (
                p.settings[0].1,
                p.settings[1].1,
                p.report.policies[0].total.cost_usd.to_string(),
            )
        })
        .collect();
    let want = [
        (50.0, 1.0, "$59,076.00"),
        (50.0, 2.0, "$118,152.00"),
        (100.0, 1.0, "$100,000.00"),
        (100.0, 2.0, "$118,152.00"),
        (150.0, 1.0, "$150,000.00"),
        (150.0, 2.0, "$150,000.00"),
    ];
    assert_eq!(got.len(), want.len());
    for ((c, d, cost), (wc, wd, wcost)) in got.iter().zip(want) {
        assert_eq!((*c, *d, cost.as_str()), (wc, wd, wcost));
    }
    // A knob that changes nothing here is refused, not run.
    let growth = skyward_sim::sweep::Axis::parse("growth=0,30").unwrap();
    assert!(skyward_sim::sweep::sweep(&sc, &[growth], &[], 1, &mut quiet).is_err());
    assert!(skyward_sim::sweep::Axis::parse("demand=0").is_err());
    assert!(skyward_sim::sweep::Axis::parse("speed=1").is_err());
}

/// Yearly floors charge each year's gap at that year's end (the ledger's
/// rule): two years of $29,200 list ($80 a day) against floors of $30,000
/// and $20,000 and a $60,000 total, no discount: year 1 pays a $800 gap,
/// year 2 none, and the term's end the rest: 60,000 − 58,400 − 800 = $800.
#[test]
fn yearly_floors_are_charged_at_each_years_end() {
    let sc = scenario(
        "name: floors
start: 2026-01-01
years: 2
policies: [cheapest-per-task]
sites:
  - {name: s, provider: aws, region: us-east-1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 1}
demand:
  - {name: daily, kind: batch, every_hours: 24, accelerators: H100:8, hours: 10}
contracts:
  - name: edp
    kind: spend
    provider: aws
    start: 2026-01-01
    term_years: 2
    commit_usd: 60000
    discount_pct: 0
    shortfall: yearly
    floors: [{year: 1, commit_usd: 30000}, {year: 2, commit_usd: 20000}]
",
    );
    let r = simulate(&sc, &[], 1, &mut quiet);
    let p = &r.policies[0];
    // 365 and 365 days (2026 and 2027 are not leap years).
    assert_eq!(p.years[0].list_usd.to_string(), "$29,200.00");
    assert_eq!(p.years[1].list_usd.to_string(), "$29,200.00");
    assert_eq!(p.years[0].shortfall_usd.to_string(), "$800.00");
    assert_eq!(p.years[1].shortfall_usd.to_string(), "$800.00");
    assert_eq!(p.total.cost_usd.to_string(), "$60,000.00");
}

const LAB: &str = "name: lab
start: 2026-01-01
years: 1
policies: [skyward, cheapest-per-task, single-cloud:aws]
options: {cycle_min_gap_s: 10}
sites:
  - {name: aws-h100, provider: aws, region: us-east-1, accelerator: H100, accelerators: 256, price_usd_per_accelerator_hour: 6.88, price_change_pct_per_year: -15}
  - {name: aws-spot, provider: aws, region: us-east-1, accelerator: H100, accelerators: 16, spot: true, price_usd_per_accelerator_hour: 1.28, preemptions_per_hour: 0.1}
  - {name: azure-h100, provider: azure, region: eastus, accelerator: H100, accelerators: 256, price_usd_per_accelerator_hour: 12.29}
  - {name: aws-b200, provider: aws, region: us-east-1, accelerator: B200, from: 2026-07-01, accelerators: 32, price_usd_per_accelerator_hour: 14.24}
demand:
  - {name: train, kind: train, arrivals_per_hour: 0.3, growth_pct_per_year: 30, accelerators: [H100:8, B200:8], hours: {dist: lognormal, median: 6, sigma: 1}, checkpoint_every_hours: 1}
  - {name: evals, kind: batch, arrivals_per_hour: 3, daily_amplitude_pct: 50, accelerators: H100:1, hours: {dist: exponential, mean: 2}, spot: allowed, checkpoint_every_hours: 0.5}
  - {name: serve, kind: serve, every_hours: 24, accelerators: H100:8, hours: 20, slo_start_minutes: 10, priority: 5}
faults:
  - {region: aws:us-east-1, at: 2026-03-01, hours: 48}
  - {provider: azure, per_year: 2, mean_hours: 6}
contracts:
  - {name: macc, kind: spend, provider: azure, start: 2026-01-01, term_years: 1, commit_usd: 1000000, discount_pct: 20}
";

/// The same scenario and seed give the same report, byte for byte; another
/// seed gives another.
#[test]
fn the_same_scenario_and_seed_give_byte_identical_reports() {
    let sc = scenario(LAB);
    let a = serde_json::to_string(&simulate(&sc, &[], 42, &mut quiet)).unwrap_or_default();
    let b = serde_json::to_string(&simulate(&sc, &[], 42, &mut quiet)).unwrap_or_default();
    let c = serde_json::to_string(&simulate(&sc, &[], 43, &mut quiet)).unwrap_or_default();
    assert!(a.len() > 1000);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// Every policy sees the same arrivals; a single-cloud policy uses only
/// its provider's sites; the outage cuts runs short and work moves;
/// spot runs are preempted; use-it-or-lose-it: with Azure's commitment
/// far from met, Skyward burns more of it than the cheapest-per-task
/// policy, which never looks at commitments, and pays less in all.
#[test]
fn policies_see_the_same_demand_and_differ_where_they_should() {
    let sc = scenario(LAB);
    let r = simulate(&sc, &[], 3, &mut quiet);
    let by = |name: &str| {
        r.policies
            .iter()
            .find(|p| p.policy == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let (sky, cheap, aws) = (
        by("skyward"),
        by("cheapest-per-task"),
        by("single-cloud:aws"),
    );
    for p in [sky, cheap, aws] {
        assert_eq!(p.total.submitted, sky.total.submitted, "{}", p.policy);
        assert!(p.total.outages >= 1, "{}", p.policy);
    }
    assert!(sky.total.submitted > 25_000);
    assert!(sky.total.preemptions > 0);
    assert!(sky.total.failovers > 0);
    let azure_burn = |p: &skyward_sim::PolicyReport| p.contracts[0].burned_usd;
    assert_eq!(azure_burn(aws), skyward_ledger::Amount::ZERO);
    assert!(azure_burn(sky) > azure_burn(cheap));
    assert!(sky.total.cost_usd < cheap.total.cost_usd);
    // The AWS-only policy burns nothing on Azure and pays the whole
    // commitment as shortfall.
    assert_eq!(aws.contracts[0].shortfall_usd.to_string(), "$1,000,000.00");
    let _ = Policy::Skyward;
}

const PLANS: &str = "name: plans
start: 2026-01-01
years: 1
policies: [cheapest-per-task, skyward]
sites:
  - {name: s, provider: aws, region: us-east-1, accelerator: H100, accelerators: 8, price_usd_per_accelerator_hour: 4}
demand:
  - {name: daily, kind: train, every_hours: 24, accelerators: H100:8, hours: 10}
contracts:
  - {name: sp, kind: hourly, provider: aws, instrument: aws-compute-savings-plan, start: 2026-01-01, term_years: 1, commit_usd_per_hour: 10, discount_pct: 20}
  - {name: ri, kind: capacity, provider: aws, region: us-east-1, sku: H100, units: 2, rate_usd_per_unit_hour: 3, start: 2026-01-01, term_years: 1}
";

/// A year of one 8-accelerator, 10-hour job a day at $4 an
/// accelerator-hour ($32 an hour of list while it runs), with 2 reserved
/// H100 at $3 a unit-hour and an AWS Compute Savings Plan of $10/h at
/// 20 % off (it covers $12.50/h of on-demand). By hand, each running hour
/// (3,650 in the year): the reservation covers 2 of the 8 accelerators
/// ($8 of list), the plan the next $12.50, and $11.50 is billed on demand.
/// Every hour of the year (8,760) pays $6 + $10 of fees.
///   list 365 × $320 = $116,800; billed 3,650 × $11.50 = $41,975;
///   fees 8,760 × $16 = $140,160; paid $182,135.
///   reservation: paid $52,560, used 3,650 × $6 = $21,900, covered
///   $29,200 of list, net savings −$23,360;
///   plan: paid $87,600, used 3,650 × $10 = $36,500, covered $45,625,
///   net savings −$41,975.
#[test]
fn savings_plans_and_reserved_capacity_settle_hour_by_hour_as_by_hand() {
    let sc = scenario(PLANS);
    let r = simulate(&sc, &[], 1, &mut quiet);
    assert_eq!(r.policies.len(), 2);
    for p in &r.policies {
        let t = &p.total;
        assert_eq!(t.list_usd.to_string(), "$116,800.00", "{}", p.policy);
        assert_eq!(t.billed_usd.to_string(), "$41,975.00", "{}", p.policy);
        assert_eq!(t.prepaid_usd.to_string(), "$140,160.00", "{}", p.policy);
        assert_eq!(t.cost_usd.to_string(), "$182,135.00", "{}", p.policy);
        let got: Vec<(&str, &str, String, String, String, String, u64)> = p
            .hourly
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.kind.as_str(),
                    h.committed_usd.to_string(),
                    h.used_usd.to_string(),
                    h.covered_list_usd.to_string(),
                    h.net_savings_usd.to_string(),
                    h.hours,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "ri",
                    "capacity",
                    "$52,560.00".into(),
                    "$21,900.00".into(),
                    "$29,200.00".into(),
                    "-$23,360.00".into(),
                    8_760
                ),
                (
                    "sp",
                    "savings-plan",
                    "$87,600.00".into(),
                    "$36,500.00".into(),
                    "$45,625.00".into(),
                    "-$41,975.00".into(),
                    8_760
                ),
            ],
            "{}",
            p.policy
        );
        assert!((p.hourly[0].utilisation_pct - 21_900.0 / 52_560.0 * 100.0).abs() < 1e-9);
    }
}

/// A savings plan beside a spend commitment on the same provider is
/// refused, naming both (their order and what the plan's fee burns
/// differ by deal).
#[test]
fn a_savings_plan_beside_a_spend_commitment_on_one_provider_is_refused() {
    let yaml = PLANS.replace(
        "  - {name: ri,",
        "  - {name: edp, kind: spend, provider: aws, start: 2026-01-01, term_years: 1, commit_usd: 1000, discount_pct: 5}\n  - {name: ri,",
    );
    let e = match skyward_spec::scenario::parse(&yaml, "plans.yaml") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("contracts[0].kind") && e.contains("sp") && e.contains("edp"),
        "{e}"
    );
}

/// Each savings plan and reservation is settled for every hour of the
/// horizon: a scenario with more than the bound is refused at the first
/// one past it, in bounded time.
#[test]
fn too_many_savings_plans_are_refused_at_the_one_past_the_bound() {
    let n = skyward_sim::scenario::HOURLY_CONTRACTS_MAX + 1;
    let mut yaml = PLANS.replace("  - {name: sp,", "  - {name: sp0,");
    for i in 1..n {
        yaml.push_str(&format!(
            "  - {{name: sp{i}, kind: hourly, provider: aws, instrument: aws-compute-savings-plan, start: 2026-01-01, term_years: 1, commit_usd_per_hour: 1, discount_pct: 20}}\n"
        ));
    }
    // sp0 and the reservation come first, then the added plans: the one
    // past the bound is the 33rd contract, index 32 (the last is not read).
    let e = match skyward_spec::scenario::parse(&yaml, "plans.yaml") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&format!("contracts[{}].kind", n - 1)) && e.contains("at most"),
        "{e}"
    );
}
