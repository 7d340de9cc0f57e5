//! Choosing a deployment: the gateway's deterministic core. No clock, no
//! I/O: time comes in as milliseconds, randomness from a seeded generator,
//! so every policy is tested exactly.
//!
//! Per deployment it keeps a peak-EWMA of latency (Finagle's: a slower
//! sample is taken at once, a faster one decays in), requests in flight,
//! a circuit breaker (closed → open after `failures` consecutive failures
//! → half-open after the cooldown, one probe at a time → closed on
//! success), a cooldown after a 429 (its Retry-After), and its own RPM/TPM
//! windows. A deployment is *eligible* for a request when its tags cover
//! the key's (residency is never relaxed, not even on failover), its
//! breaker lets a request through, it is not cooling down, and its limits
//! have room.

use crate::config::{Capacity, Deployment, Model, Policy};

/// Decay constant of the latency EWMA.
pub const EWMA_TAU_MS: f64 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BreakerState {
    Closed,
    Open { until_ms: u64 },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct DeploymentState {
    pub ewma_ms: f64,
    pub samples: u64,
    last_ms: u64,
    pub inflight: u32,
    pub consecutive_failures: u32,
    pub breaker: BreakerState,
    pub cooldown_until_ms: u64,
    pub rpm: Window,
    pub tpm: Window,
}

impl Default for DeploymentState {
    fn default() -> Self {
        DeploymentState {
            ewma_ms: 0.0,
            samples: 0,
            last_ms: 0,
            inflight: 0,
            consecutive_failures: 0,
            breaker: BreakerState::Closed,
            cooldown_until_ms: 0,
            rpm: Window::default(),
            tpm: Window::default(),
        }
    }
}

/// A sliding one-minute window from two fixed minutes (the previous one
/// weighted by how much of it still overlaps), as many rate limiters do.
#[derive(Debug, Clone, Default)]
pub struct Window {
    minute: u64,
    current: u64,
    previous: u64,
}

impl Window {
    fn roll(&mut self, now_ms: u64) {
        let m = now_ms / 60_000;
        if m != self.minute {
            self.previous = if m == self.minute + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.minute = m;
        }
    }

    /// The amount in the last 60 s (estimated).
    pub fn level(&mut self, now_ms: u64) -> f64 {
        self.roll(now_ms);
        let into = (now_ms % 60_000) as f64 / 60_000.0;
        self.previous as f64 * (1.0 - into) + self.current as f64
    }

    pub fn add(&mut self, now_ms: u64, n: u64) {
        self.roll(now_ms);
        self.current = self.current.saturating_add(n);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Latency: time to the whole response, or to the first token when
    /// streaming.
    Success { latency_ms: f64, tokens: u64 },
    /// 429: cool down for the Retry-After (or a default).
    RateLimited { retry_after_ms: u64 },
    /// 5xx, timeout, connection failure, broken stream.
    Failure,
    /// The deployment refused the gateway itself (401, 403: its
    /// credentials; 404: the deployment or model it was configured with is
    /// not there): broken for every client, so its breaker opens at once.
    Rejected,
    /// The request ended without a verdict on the deployment (client gone,
    /// or a 4xx the client caused).
    Neutral,
}

/// Why a deployment was passed over (for errors and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    Residency,
    BreakerOpen,
    CoolingDown,
    Saturated,
    AlreadyTried,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Residency => "not allowed for this key (tags/residency)",
            Skip::BreakerOpen => "circuit open",
            Skip::CoolingDown => "rate limited upstream (cooling down)",
            Skip::Saturated => "at its rpm/tpm/in-flight limit",
            Skip::AlreadyTried => "already tried for this request",
        }
    }
}

/// xorshift64*: small, seeded, good enough to spread load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Breaker {
    pub failures: u32,
    pub cooldown_ms: u64,
}

impl DeploymentState {
    fn observe(&mut self, now_ms: u64, latency_ms: f64) {
        if self.samples == 0 || latency_ms > self.ewma_ms {
            self.ewma_ms = latency_ms;
        } else {
            let dt = now_ms.saturating_sub(self.last_ms) as f64;
            let w = (-dt / EWMA_TAU_MS).exp();
            self.ewma_ms = self.ewma_ms * w + latency_ms * (1.0 - w);
        }
        self.samples += 1;
        self.last_ms = now_ms;
    }

    fn breaker_admits(&mut self, now_ms: u64) -> bool {
        match self.breaker {
            BreakerState::Closed => true,
            BreakerState::Open { until_ms } if now_ms >= until_ms => {
                self.breaker = BreakerState::HalfOpen { probing: false };
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { probing } => !probing,
        }
    }

    /// Can it take a request now? (without taking it)
    pub fn check(&mut self, d: &Deployment, now_ms: u64) -> Result<(), Skip> {
        if !self.breaker_admits(now_ms) {
            return Err(Skip::BreakerOpen);
        }
        if now_ms < self.cooldown_until_ms {
            return Err(Skip::CoolingDown);
        }
        if d.limits
            .max_inflight
            .is_some_and(|m| u64::from(self.inflight) >= m)
            || d.limits
                .rpm
                .is_some_and(|m| self.rpm.level(now_ms) >= m as f64)
            || d.limits
                .tpm
                .is_some_and(|m| self.tpm.level(now_ms) >= m as f64)
        {
            return Err(Skip::Saturated);
        }
        Ok(())
    }

    /// Takes a request: counts it in flight and in the RPM window; a
    /// half-open breaker lets only this probe through.
    pub fn take(&mut self, now_ms: u64) {
        self.inflight += 1;
        self.rpm.add(now_ms, 1);
        if let BreakerState::HalfOpen { probing: false } = self.breaker {
            self.breaker = BreakerState::HalfOpen { probing: true };
        }
    }

    pub fn finish(&mut self, now_ms: u64, outcome: Outcome, breaker: &Breaker) {
        self.inflight = self.inflight.saturating_sub(1);
        match outcome {
            Outcome::Success { latency_ms, tokens } => {
                self.observe(now_ms, latency_ms);
                self.tpm.add(now_ms, tokens);
                self.consecutive_failures = 0;
                self.breaker = BreakerState::Closed;
            }
            Outcome::RateLimited { retry_after_ms } => {
                self.cooldown_until_ms = self.cooldown_until_ms.max(now_ms + retry_after_ms);
                if let BreakerState::HalfOpen { .. } = self.breaker {
                    self.breaker = BreakerState::HalfOpen { probing: false };
                }
            }
            Outcome::Failure => {
                self.consecutive_failures += 1;
                let trip = matches!(self.breaker, BreakerState::HalfOpen { .. })
                    || self.consecutive_failures >= breaker.failures;
                if trip {
                    self.breaker = BreakerState::Open {
                        until_ms: now_ms + breaker.cooldown_ms,
                    };
                }
            }
            Outcome::Rejected => {
                self.consecutive_failures += 1;
                self.breaker = BreakerState::Open {
                    until_ms: now_ms + breaker.cooldown_ms,
                };
            }
            Outcome::Neutral => {
                if let BreakerState::HalfOpen { probing: true } = self.breaker {
                    self.breaker = BreakerState::HalfOpen { probing: false };
                }
            }
        }
    }

    /// An active health check's verdict: a failure counts like a failed
    /// request (it can open the breaker); a success lets an open breaker
    /// probe at once instead of waiting out its cooldown.
    pub fn health(&mut self, now_ms: u64, ok: bool, breaker: &Breaker) {
        if ok {
            if let BreakerState::Open { .. } = self.breaker {
                self.breaker = BreakerState::HalfOpen { probing: false };
            }
        } else {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= breaker.failures && self.breaker == BreakerState::Closed
            {
                self.breaker = BreakerState::Open {
                    until_ms: now_ms + breaker.cooldown_ms,
                };
            }
        }
    }

    /// Score for least-latency: lower is better; unmeasured go first.
    fn load_score(&self) -> f64 {
        self.ewma_ms * f64::from(self.inflight + 1)
    }
}

/// Whether a deployment's tags cover all of a key's.
pub fn allowed(d: &Deployment, key_tags: &[String]) -> bool {
    key_tags.iter().all(|t| d.tags.contains(t))
}

/// Picks the deployment for the next attempt, or says why none can take
/// it: (index) or the skip reasons counted over the deployments.
pub fn pick(
    model: &Model,
    states: &mut [&mut DeploymentState],
    key_tags: &[String],
    tried: &[usize],
    now_ms: u64,
    rng: &mut Rng,
) -> Result<usize, Vec<(Skip, usize)>> {
    let (policy, latency_bound_ms, deployments) =
        (model.policy, model.latency_bound_ms, &model.deployments);
    let mut eligible: Vec<usize> = Vec::with_capacity(deployments.len());
    let mut skipped: Vec<(Skip, usize)> = Vec::new();
    let mut count = |s: Skip| match skipped.iter_mut().find(|(k, _)| *k == s) {
        Some((_, n)) => *n += 1,
        None => skipped.push((s, 1)),
    };
    for (i, d) in deployments.iter().enumerate() {
        if !allowed(d, key_tags) {
            count(Skip::Residency);
        } else if tried.contains(&i) {
            count(Skip::AlreadyTried);
        } else if let Some(s) = states.get_mut(i) {
            match s.check(d, now_ms) {
                Ok(()) => eligible.push(i),
                Err(k) => count(k),
            }
        }
    }
    if eligible.is_empty() {
        skipped.sort();
        return Err(skipped);
    }
    let weighted = |set: &[usize], rng: &mut Rng| -> usize {
        let total: f64 = set.iter().map(|i| deployments[*i].weight).sum();
        let mut x = rng.unit() * total;
        for i in set {
            x -= deployments[*i].weight;
            if x < 0.0 {
                return *i;
            }
        }
        set[set.len() - 1]
    };
    let chosen = match policy {
        Policy::Priority => {
            let best = eligible
                .iter()
                .map(|i| deployments[*i].capacity)
                .min_by_key(|c| tier(*c))
                .unwrap_or(Capacity::PayAsYouGo);
            let tier_set: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|i| deployments[*i].capacity == best)
                .collect();
            weighted(&tier_set, rng)
        }
        Policy::Weighted => weighted(&eligible, rng),
        Policy::LeastLatency => {
            if eligible.len() == 1 {
                eligible[0]
            } else {
                let a = eligible[(rng.next_u64() % eligible.len() as u64) as usize];
                let mut b = eligible[(rng.next_u64() % (eligible.len() as u64 - 1)) as usize];
                if b == a {
                    b = eligible[eligible.len() - 1];
                }
                let (sa, sb) = (states[a].load_score(), states[b].load_score());
                if sb < sa {
                    b
                } else {
                    a
                }
            }
        }
        Policy::Cost => {
            let price =
                |i: usize| deployments[i].input_usd_per_mtok + deployments[i].output_usd_per_mtok;
            let within = |i: usize| {
                latency_bound_ms.is_none_or(|b| states[i].samples == 0 || states[i].ewma_ms <= b)
            };
            let mut ok: Vec<usize> = eligible.iter().copied().filter(|i| within(*i)).collect();
            if ok.is_empty() {
                // None meets the bound: the fastest.
                ok = eligible.clone();
                ok.sort_by(|a, b| {
                    states[*a]
                        .ewma_ms
                        .total_cmp(&states[*b].ewma_ms)
                        .then(a.cmp(b))
                });
                ok[0]
            } else {
                ok.sort_by(|a, b| price(*a).total_cmp(&price(*b)).then(a.cmp(b)));
                ok[0]
            }
        }
    };
    if let Some(s) = states.get_mut(chosen) {
        s.take(now_ms);
    }
    Ok(chosen)
}

fn tier(c: Capacity) -> u8 {
    match c {
        Capacity::Committed => 0,
        Capacity::PayAsYouGo => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Limits;

    fn dep(name: &str, cap: Capacity, price: f64, tags: &[&str]) -> Deployment {
        Deployment {
            name: name.into(),
            provider: "p".into(),
            region: "r".into(),
            url: "http://x".into(),
            query: String::new(),
            api: crate::config::Api::OpenAi,
            h2c: false,
            auth: crate::config::Auth::Bearer,
            upstream_model: "m".into(),
            api_key: None,
            aws: None,
            google: None,
            capacity: cap,
            input_usd_per_mtok: price,
            output_usd_per_mtok: price,
            weight: 1.0,
            limits: Limits {
                rpm: None,
                tpm: None,
                max_inflight: None,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn run(
        policy: Policy,
        ds: &[Deployment],
        st: &mut [DeploymentState],
        tags: &[String],
        tried: &[usize],
        now: u64,
        rng: &mut Rng,
    ) -> Result<usize, Vec<(Skip, usize)>> {
        let mut refs: Vec<&mut DeploymentState> = st.iter_mut().collect();
        let model = Model {
            name: "m".into(),
            policy,
            latency_bound_ms: Some(500.0),
            retries: crate::config::Retries {
                max: 2,
                backoff_ms: 25,
                max_backoff_ms: 2_000,
                on: crate::config::Failure::ALL.to_vec(),
            },
            deployments: ds.to_vec(),
        };
        pick(&model, &mut refs, tags, tried, now, rng)
    }

    const B: Breaker = Breaker {
        failures: 2,
        cooldown_ms: 1_000,
    };

    #[test]
    fn priority_spills_on_429_and_returns_after_retry_after() {
        let ds = [
            dep("ptu", Capacity::Committed, 5.0, &[]),
            dep("payg", Capacity::PayAsYouGo, 1.0, &[]),
        ];
        let mut st = vec![DeploymentState::default(), DeploymentState::default()];
        let mut rng = Rng::new(1);
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 0, &mut rng),
            Ok(0)
        );
        st[0].finish(
            10,
            Outcome::RateLimited {
                retry_after_ms: 2_000,
            },
            &B,
        );
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 20, &mut rng),
            Ok(1),
            "spill"
        );
        st[1].finish(
            30,
            Outcome::Success {
                latency_ms: 5.0,
                tokens: 10,
            },
            &B,
        );
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 2_011, &mut rng),
            Ok(0),
            "back to committed"
        );
    }

    #[test]
    fn breaker_opens_half_opens_with_one_probe_and_closes() {
        let ds = [
            dep("a", Capacity::Committed, 1.0, &[]),
            dep("b", Capacity::PayAsYouGo, 1.0, &[]),
        ];
        let mut st = vec![DeploymentState::default(), DeploymentState::default()];
        let mut rng = Rng::new(2);
        for t in [0, 1] {
            assert_eq!(
                run(Policy::Priority, &ds, &mut st, &[], &[], t, &mut rng),
                Ok(0)
            );
            st[0].finish(t, Outcome::Failure, &B);
        }
        assert_eq!(st[0].breaker, BreakerState::Open { until_ms: 1_001 });
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 500, &mut rng),
            Ok(1)
        );
        // After the cooldown: one probe goes to a; a second request meanwhile goes to b.
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 1_001, &mut rng),
            Ok(0)
        );
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 1_002, &mut rng),
            Ok(1)
        );
        st[0].finish(
            1_003,
            Outcome::Success {
                latency_ms: 3.0,
                tokens: 1,
            },
            &B,
        );
        assert_eq!(st[0].breaker, BreakerState::Closed);
        // A failed probe opens it again at once.
        st[0].breaker = BreakerState::HalfOpen { probing: true };
        st[0].inflight = 1;
        st[0].finish(2_000, Outcome::Failure, &B);
        assert_eq!(st[0].breaker, BreakerState::Open { until_ms: 3_000 });
        // A deployment that refuses the gateway's own credentials opens at
        // its first refusal (B opens after 2 failures).
        let mut fresh = DeploymentState {
            inflight: 1,
            ..DeploymentState::default()
        };
        fresh.finish(5_000, Outcome::Rejected, &B);
        assert_eq!(fresh.breaker, BreakerState::Open { until_ms: 6_000 });
    }

    #[test]
    fn residency_is_never_relaxed() {
        let ds = [
            dep("us", Capacity::Committed, 1.0, &["us"]),
            dep("eu", Capacity::PayAsYouGo, 9.0, &["eu"]),
        ];
        let mut st = vec![DeploymentState::default(), DeploymentState::default()];
        let mut rng = Rng::new(3);
        let eu = vec!["eu".to_string()];
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &eu, &[], 0, &mut rng),
            Ok(1)
        );
        // The EU one failed already: nothing else may take it.
        let e = run(Policy::Priority, &ds, &mut st, &eu, &[1], 1, &mut rng).unwrap_err();
        assert_eq!(e, vec![(Skip::Residency, 1), (Skip::AlreadyTried, 1)]);
    }

    #[test]
    fn weighted_follows_weights_and_least_latency_prefers_the_faster() {
        let mut ds = vec![
            dep("a", Capacity::PayAsYouGo, 1.0, &[]),
            dep("b", Capacity::PayAsYouGo, 1.0, &[]),
        ];
        ds[0].weight = 3.0;
        let mut st = vec![DeploymentState::default(), DeploymentState::default()];
        let mut rng = Rng::new(4);
        let mut n = [0usize; 2];
        for t in 0..4_000 {
            let i = run(Policy::Weighted, &ds, &mut st, &[], &[], t, &mut rng).unwrap();
            st[i].finish(t, Outcome::Neutral, &B);
            n[i] += 1;
        }
        let share = n[0] as f64 / 4_000.0;
        assert!((share - 0.75).abs() < 0.03, "{share}");
        st[0].finish(
            0,
            Outcome::Success {
                latency_ms: 80.0,
                tokens: 0,
            },
            &B,
        );
        st[1].finish(
            0,
            Outcome::Success {
                latency_ms: 10.0,
                tokens: 0,
            },
            &B,
        );
        st[0].inflight = 0;
        st[1].inflight = 0;
        let mut to_b = 0;
        for t in 0..200 {
            let i = run(Policy::LeastLatency, &ds, &mut st, &[], &[], t, &mut rng).unwrap();
            st[i].inflight -= 1;
            to_b += usize::from(i == 1);
        }
        assert_eq!(to_b, 200, "with two deployments P2C always compares both");
    }

    #[test]
    fn cost_takes_the_cheapest_within_the_latency_bound() {
        let ds = [
            dep("cheap-slow", Capacity::PayAsYouGo, 1.0, &[]),
            dep("mid", Capacity::PayAsYouGo, 2.0, &[]),
            dep("dear", Capacity::PayAsYouGo, 9.0, &[]),
        ];
        let mut st = vec![
            DeploymentState::default(),
            DeploymentState::default(),
            DeploymentState::default(),
        ];
        let mut rng = Rng::new(5);
        assert_eq!(
            run(Policy::Cost, &ds, &mut st, &[], &[], 0, &mut rng),
            Ok(0)
        );
        st[0].finish(
            1,
            Outcome::Success {
                latency_ms: 900.0,
                tokens: 0,
            },
            &B,
        );
        assert_eq!(
            run(Policy::Cost, &ds, &mut st, &[], &[], 2, &mut rng),
            Ok(1),
            "cheap one is over 500 ms"
        );
    }

    #[test]
    fn limits_saturate_and_windows_slide() {
        let mut ds = vec![
            dep("a", Capacity::Committed, 1.0, &[]),
            dep("b", Capacity::PayAsYouGo, 1.0, &[]),
        ];
        ds[0].limits.rpm = Some(2);
        let mut st = vec![DeploymentState::default(), DeploymentState::default()];
        let mut rng = Rng::new(6);
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 0, &mut rng),
            Ok(0)
        );
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 1, &mut rng),
            Ok(0)
        );
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 2, &mut rng),
            Ok(1),
            "rpm reached"
        );
        // 90 s later the first minute's requests count for half.
        assert!((st[0].rpm.level(90_000) - 1.0).abs() < 1e-9);
        assert_eq!(
            run(Policy::Priority, &ds, &mut st, &[], &[], 90_000, &mut rng),
            Ok(0)
        );
    }
}
