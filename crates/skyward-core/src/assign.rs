//! The global step of a scheduling cycle: where the admitted work goes.
//!
//! The queue order (step 1 of `Core::schedule`) decides *which* pending
//! workloads start this cycle (priority, FIFO, gang reservations,
//! backfill); this step decides *where*, all at once, with
//! `skyward-placement`'s assignment problem: every site's free
//! accelerators are a row, every provider's live commitment a convex cost
//! `max(free_p, (1 − discount_p) · spend_p)`. Spend below what a
//! commitment forecast to fall short will bill anyway costs nothing at the
//! margin, so eligible work fills it first; past it, the discounted list
//! price competes with every other site.
//!
//! Admitted workloads must be placed (the policy's own greedy placement
//! proves they fit and is the fallback plan); further workloads that
//! waited only for capacity may be placed too if the global assignment
//! finds room for them. Deterministic: the Lagrangian method always, and
//! on small problems whose gap it leaves open the exact MILP (its time
//! limit is the one source of variation, and is reported).

use skyward_placement::exact;
use skyward_placement::lagrange::{self, Settings};
use skyward_placement::problem::{Choice, Opt, Problem};

/// One site a workload may go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub site: usize,
    /// Accelerators the gang takes there.
    pub need: u32,
    /// Its list cost on that site, dollars (price × accelerators × hours).
    pub list_usd: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Admitted by the queue policy: must be placed.
    pub must: bool,
    pub offers: Vec<Offer>,
}

/// Sites and providers as the cycle sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Market {
    pub site_provider: Vec<usize>,
    /// Free accelerators per site at the start of the cycle.
    pub site_free: Vec<u32>,
    /// Per provider: billed dollars a commitment will charge anyway
    /// (0 without one), and 1 − discount.
    pub free_usd: Vec<f64>,
    pub factor: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Per item, the index of its chosen offer (None: not placed).
    pub choice: Vec<Option<usize>>,
    /// The plan's cost over the commitments (no penalties), dollars.
    pub cost_usd: f64,
    /// A proven lower bound on the cost of any plan placing as many.
    pub bound_usd: f64,
    pub method: &'static str,
    pub proven_optimal: bool,
}

/// The global solvers run on cycles of at most this many options (pending
/// work × sites it may use); larger cycles keep the policy's plan after
/// local search (each cycle places at most what freed up since the last,
/// so this is rare after the first).
pub const SOLVE_OPTIONS_MAX: usize = 4_000;

/// The MILP's limit per cycle, seconds (the Lagrangian proves most small
/// cycles on its own).
pub const EXACT_TIME_LIMIT_S: f64 = 0.25;

pub fn problem(items: &[Item], market: &Market) -> Problem {
    let mut penalty = 1.0;
    let options = items
        .iter()
        .map(|it| {
            penalty += it.offers.iter().map(|o| o.list_usd).fold(0.0, f64::max);
            it.offers
                .iter()
                .map(|o| Opt {
                    spend: vec![(
                        market.site_provider.get(o.site).copied().unwrap_or(0),
                        o.list_usd,
                    )],
                    uses: vec![(o.site, f64::from(o.need))],
                })
                .collect()
        })
        .collect();
    Problem {
        options,
        can_skip: items.iter().map(|i| !i.must).collect(),
        skip_penalty: penalty,
        row_limit: market.site_free.iter().map(|f| f64::from(*f)).collect(),
        commit: market.free_usd.clone(),
        factor: market.factor.clone(),
    }
}

/// Chooses an offer per item. `start` is the policy's own placement
/// (feasible by construction); the result is never worse than it.
pub fn assign(
    items: &[Item],
    market: &Market,
    start: &[Option<usize>],
    exact_options_max: usize,
) -> Assignment {
    if let Some(a) = alone(items, market, start) {
        return a;
    }
    let pr = problem(items, market);
    let mut best: Choice = start.to_vec();
    if !pr.is_feasible(&best) {
        // Cannot happen if the policy is right; keep the must items at
        // their start and let the solver try the rest.
        best = start.iter().map(|_| None).collect();
    }
    lagrange::local_search(&pr, &mut best);
    let mut method = "policy order + local search";
    // Most cycles end here: the start is proven optimal by a bound that
    // costs one pass over the options (see `quick_bound`).
    let quick = quick_bound(&pr, &best);
    let cost = pr.cost(&best);
    if Problem::placed(&best) == items.len() && quick >= cost - 1e-6 * cost.abs().max(1.0) {
        return Assignment {
            cost_usd: cost,
            bound_usd: quick.min(cost),
            choice: best,
            method,
            proven_optimal: true,
        };
    }
    // A cycle stays short: past this size the policy's plan (improved by
    // local search) stands, with its proven gap reported.
    if pr.option_count() > SOLVE_OPTIONS_MAX {
        return Assignment {
            cost_usd: cost,
            bound_usd: quick.min(cost),
            choice: best,
            method,
            proven_optimal: false,
        };
    }
    let lag = lagrange::solve(
        &pr,
        &Settings {
            lp: false,
            ..Settings::default()
        },
    );
    let mut bound = lag.cost_bound.max(quick);
    let mut proven = false;
    if pr.is_feasible(&lag.choice) && better(&pr, &lag.choice, &best) {
        best = lag.choice.clone();
        method = "lagrangian";
        proven = lag.proven_optimal;
    } else if lag.proven_optimal && pr.objective(&best) <= lag.upper_bound + 1e-9 {
        proven = true;
    }
    if !proven && pr.option_count() <= exact_options_max {
        if let Ok(s) = exact::solve(&pr, EXACT_TIME_LIMIT_S, Some(&best)) {
            if pr.is_feasible(&s.choice) && better(&pr, &s.choice, &best) {
                best = s.choice.clone();
                method = "exact MILP";
            }
            if s.proven_optimal {
                proven = true;
                bound = bound.max(s.cost_bound);
            }
        }
    }
    let cost = pr.cost(&best);
    Assignment {
        cost_usd: cost,
        bound_usd: bound.min(cost),
        choice: best,
        method,
        proven_optimal: proven,
    }
}

/// The most common cycle: one workload that must be placed and nothing
/// else. The optimum is then its cheapest offer that fits, found in one
/// pass without building the problem. When the policy's offer is that
/// optimum (within local search's tolerance), it is returned, proven, with
/// the optimum's cost as the bound: what [`assign`]'s general path returns
/// after local search, without its allocations. Otherwise `None`, and the
/// general path runs.
fn alone(items: &[Item], market: &Market, start: &[Option<usize>]) -> Option<Assignment> {
    let ([it], [Some(first)]) = (items, start) else {
        return None;
    };
    if !it.must {
        return None;
    }
    let provider_cost = |p: usize, spend: f64| -> f64 {
        let factor = market.factor.get(p).copied().unwrap_or(1.0);
        let commit = market.free_usd.get(p).copied().unwrap_or(0.0);
        (factor * spend).max(commit)
    };
    let fits = |o: &Offer| {
        market
            .site_free
            .get(o.site)
            .is_some_and(|f| f64::from(o.need) <= f64::from(*f) + 1e-9)
    };
    // The cost an offer adds to the empty plan.
    let delta = |o: &Offer| -> f64 {
        let p = market.site_provider.get(o.site).copied().unwrap_or(0);
        provider_cost(p, o.list_usd) - provider_cost(p, 0.0)
    };
    let chosen = it.offers.get(*first).filter(|o| fits(o))?;
    let at = delta(chosen);
    let min = it
        .offers
        .iter()
        .filter(|o| fits(o))
        .map(delta)
        .fold(f64::INFINITY, f64::min);
    // Local search would move to an offer cheaper by more than this.
    if min < at - 1e-6 * (1.0 + at.abs()) {
        return None;
    }
    let base: f64 = (0..market.free_usd.len())
        .map(|p| provider_cost(p, 0.0))
        .sum();
    Some(Assignment {
        choice: vec![Some(*first)],
        cost_usd: base + at,
        bound_usd: base + min.min(at),
        method: "policy order + local search",
        proven_optimal: true,
    })
}

/// A lower bound on the cost of every feasible plan, from one Lagrangian
/// point: max(c, f·S) ≥ λ·c + (1 − λ)·f·S for λ in [0, 1], so
/// Σ_p λ_p c_p + Σ over the items that must be placed of the min over
/// their offers of (1 − λ_p)·f_p·list bounds every plan (capacity
/// relaxed; optional items add nothing negative). λ_p is 1 where `at` leaves provider p's
/// commitment unmet (its spend is free at the margin) and 0 elsewhere;
/// when `at` is optimal in the relaxation, the bound meets its cost.
pub fn quick_bound(pr: &Problem, at: &Choice) -> f64 {
    let spend = pr.spend(at);
    let lambda: Vec<f64> = (0..pr.providers())
        .map(|p| {
            if pr.factor[p] * spend[p] < pr.commit[p] {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let fixed: f64 = (0..pr.providers()).map(|p| lambda[p] * pr.commit[p]).sum();
    let per_item: f64 = pr
        .options
        .iter()
        .zip(&pr.can_skip)
        .filter(|(_, skip)| !**skip)
        .map(|(opts, _)| {
            opts.iter()
                .map(|o| {
                    o.spend
                        .iter()
                        .map(|&(p, s)| (1.0 - lambda[p]) * pr.factor[p] * s)
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .filter(|c| c.is_finite())
        .sum();
    fixed + per_item
}

/// More placed, then cheaper (by more than rounding).
fn better(pr: &Problem, a: &Choice, b: &Choice) -> bool {
    let (na, nb) = (Problem::placed(a), Problem::placed(b));
    na > nb || (na == nb && pr.cost(a) < pr.cost(b) - 1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(site: usize, need: u32, list: f64) -> Offer {
        Offer {
            site,
            need,
            list_usd: list,
        }
    }

    /// Two sites: 0 on provider 0 (commitment with $100 free, 20 % off),
    /// 1 on provider 1 at $15. By hand, for k of the three $50 jobs on
    /// provider 0: k = 3 bills max(100, 0.8 × 150) = $120; k = 2 bills
    /// $100 + $15 = $115; k = 1, $100 + $30; k = 0, $100 + $45. So two go
    /// to the commitment (its $100 is due either way) and the third is
    /// cheaper at $15 than the $20 it would add there.
    #[test]
    fn commitment_fills_first_then_cheapest() {
        let items: Vec<Item> = (0..3)
            .map(|_| Item {
                must: true,
                offers: vec![offer(0, 1, 50.0), offer(1, 1, 15.0)],
            })
            .collect();
        let market = Market {
            site_provider: vec![0, 1],
            site_free: vec![8, 8],
            free_usd: vec![100.0, 0.0],
            factor: vec![0.8, 1.0],
        };
        let start = vec![Some(1), Some(1), Some(1)];
        let a = assign(&items, &market, &start, 10_000);
        let on0 = a.choice.iter().filter(|c| **c == Some(0)).count();
        assert_eq!(on0, 2, "{a:?}");
        assert!((a.cost_usd - 115.0).abs() < 1e-6, "{a:?}");
        assert!(a.proven_optimal);
    }

    /// Capacity couples: one site of 8 accelerators, a must 8-gang that
    /// the policy placed and an optional 1-accelerator job that cannot
    /// fit beside it.
    /// The quick bound by hand: provider 0 has $100 free at 0.8, provider
    /// 1 none. With every job on provider 0 ($150 list, $120 billed: the
    /// commitment is met), λ = 0 everywhere: the bound is Σ cheapest
    /// discounted, 3 × min(0.8 × 50, 15) = $45, below the $115 optimum
    /// (capacity and the commitment's floor make the difference), so the
    /// solver runs. With $500 free, three jobs on provider 0 leave it
    /// unmet: λ_0 = 1, the bound is $500 + 3 × min(0, 15) = $500, which
    /// the start meets: proven at once.
    #[test]
    fn the_quick_bound_by_hand() {
        let items: Vec<Item> = (0..3)
            .map(|_| Item {
                must: true,
                offers: vec![offer(0, 1, 50.0), offer(1, 1, 15.0)],
            })
            .collect();
        let mut market = Market {
            site_provider: vec![0, 1],
            site_free: vec![8, 8],
            free_usd: vec![100.0, 0.0],
            factor: vec![0.8, 1.0],
        };
        let pr = problem(&items, &market);
        let all0 = vec![Some(0), Some(0), Some(0)];
        assert!((quick_bound(&pr, &all0) - 45.0).abs() < 1e-9);
        market.free_usd[0] = 500.0;
        let pr = problem(&items, &market);
        assert!((quick_bound(&pr, &all0) - 500.0).abs() < 1e-9);
        let a = assign(&items, &market, &all0, 0);
        assert!(
            a.proven_optimal && (a.cost_usd - 500.0).abs() < 1e-9,
            "{a:?}"
        );
    }

    /// One must workload alone (the shortcut): by hand, provider 0 has $100
    /// free at 0.8 and provider 1 none; a $50 offer on provider 0 adds
    /// nothing (within the $100 due anyway), a $15 one on provider 1 adds
    /// $15. Started on provider 1, the answer moves to provider 0 ($100
    /// in all); started on 0, it stays, proven, bound $100.
    #[test]
    fn one_workload_alone_by_hand() {
        let items = vec![Item {
            must: true,
            offers: vec![offer(0, 1, 50.0), offer(1, 1, 15.0)],
        }];
        let market = Market {
            site_provider: vec![0, 1],
            site_free: vec![8, 8],
            free_usd: vec![100.0, 0.0],
            factor: vec![0.8, 1.0],
        };
        let a = assign(&items, &market, &[Some(0)], 0);
        assert_eq!(a.choice, vec![Some(0)]);
        assert!(a.proven_optimal);
        assert!((a.cost_usd - 100.0).abs() < 1e-9 && (a.bound_usd - 100.0).abs() < 1e-9);
        let a = assign(&items, &market, &[Some(1)], 0);
        assert_eq!(a.choice, vec![Some(0)], "{a:?}");
        assert!((a.cost_usd - 100.0).abs() < 1e-9, "{a:?}");
        // Provider 0 full: the $15 offer is the only one that fits.
        let full = Market {
            site_free: vec![0, 8],
            ..market
        };
        let a = assign(&items, &full, &[Some(1)], 0);
        assert_eq!(a.choice, vec![Some(1)]);
        assert!((a.cost_usd - 115.0).abs() < 1e-9, "{a:?}");
    }

    /// The shortcut against brute force over the offers with the
    /// placement crate's own cost function, on random single workloads.
    #[test]
    fn one_workload_alone_matches_brute_force() {
        let mut rng = skyward_model::rng::SplitMix64::new(7);
        for case in 0..2_000 {
            let sites = 1 + (rng.next_u64() % 5) as usize;
            let providers = 1 + (rng.next_u64() % 3) as usize;
            let market = Market {
                site_provider: (0..sites)
                    .map(|_| (rng.next_u64() % providers as u64) as usize)
                    .collect(),
                site_free: (0..sites).map(|_| (rng.next_u64() % 5) as u32).collect(),
                free_usd: (0..providers)
                    .map(|_| {
                        if rng.next_u64().is_multiple_of(2) {
                            0.0
                        } else {
                            (rng.next_u64() % 200) as f64
                        }
                    })
                    .collect(),
                factor: (0..providers)
                    .map(|_| 0.5 + (rng.next_u64() % 50) as f64 / 100.0)
                    .collect(),
            };
            let offers: Vec<Offer> = (0..sites)
                .map(|s| {
                    offer(
                        s,
                        1 + (rng.next_u64() % 3) as u32,
                        (rng.next_u64() % 300) as f64,
                    )
                })
                .collect();
            let items = vec![Item { must: true, offers }];
            let pr = problem(&items, &market);
            let fitting: Vec<usize> = (0..sites)
                .filter(|o| pr.is_feasible(&vec![Some(*o)]))
                .collect();
            let Some(&start) = fitting.get((rng.next_u64() as usize) % fitting.len().max(1)) else {
                continue;
            };
            let best = fitting
                .iter()
                .map(|o| pr.cost(&vec![Some(*o)]))
                .fold(f64::INFINITY, f64::min);
            let a = assign(&items, &market, &[Some(start)], 0);
            assert!(pr.is_feasible(&a.choice), "case {case}: {a:?}");
            assert!(
                (pr.cost(&a.choice) - a.cost_usd).abs() < 1e-9,
                "case {case}: {a:?}"
            );
            assert!(
                a.cost_usd <= best + 1e-6 * (1.0 + best),
                "case {case}: {a:?} vs {best}"
            );
            assert!(a.bound_usd <= best + 1e-9, "case {case}: {a:?} vs {best}");
        }
    }

    #[test]
    fn must_items_keep_their_room() {
        let items = vec![
            Item {
                must: true,
                offers: vec![offer(0, 8, 80.0)],
            },
            Item {
                must: false,
                offers: vec![offer(0, 1, 1.0)],
            },
        ];
        let market = Market {
            site_provider: vec![0],
            site_free: vec![8],
            free_usd: vec![0.0],
            factor: vec![1.0],
        };
        let a = assign(&items, &market, &[Some(0), None], 10_000);
        assert_eq!(a.choice, vec![Some(0), None]);
    }
}
