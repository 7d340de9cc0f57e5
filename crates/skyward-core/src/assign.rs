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
    let pr = problem(items, market);
    let mut best: Choice = start.to_vec();
    if !pr.is_feasible(&best) {
        // Cannot happen if the policy is right; keep the must items at
        // their start and let the solver try the rest.
        best = start.iter().map(|_| None).collect();
    }
    lagrange::local_search(&pr, &mut best);
    let mut method = "policy order + local search";
    let lag = lagrange::solve(&pr, &Settings::default());
    let mut bound = lag.cost_bound;
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
