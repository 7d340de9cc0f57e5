//! Prometheus metrics of the gateway, including a histogram of its own
//! added latency (total time minus time waiting on the upstream), as
//! TensorZero reports it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Added-latency buckets in seconds (50 µs … 100 ms).
pub const ADDED_BUCKETS_S: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
/// Upstream latency buckets in seconds.
pub const UPSTREAM_BUCKETS_S: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe_s(&self, s: f64) {
        // Cumulative buckets: bump the first bucket that holds it; render sums.
        if let Some(i) = self.bounds.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add((s * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            acc += c.load(Ordering::Relaxed);
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {acc}");
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            o,
            "{name}_sum {}",
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(o, "{name}_count {n}");
    }
}

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

pub struct Metrics {
    pub added: Histogram,
    pub upstream: Histogram,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    pub retries: AtomicU64,
    /// (model, deployment, status) → count.
    pub responses: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (tenant, deployment) → usage.
    pub usage: Mutex<BTreeMap<(String, String), Tally>>,
    /// Gateway's own answers (no upstream): status → count.
    pub local: Mutex<BTreeMap<u16, u64>>,
    /// (model, deployment) → refusals of the gateway itself (401, 403,
    /// 404 from the upstream): an alert, not the client's error.
    pub rejected: Mutex<BTreeMap<(String, String), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            added: Histogram::new(ADDED_BUCKETS_S),
            upstream: Histogram::new(UPSTREAM_BUCKETS_S),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            responses: Mutex::new(BTreeMap::new()),
            usage: Mutex::new(BTreeMap::new()),
            local: Mutex::new(BTreeMap::new()),
            rejected: Mutex::new(BTreeMap::new()),
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn response(&self, model: &str, deployment: &str, status: u16) {
        if let Ok(mut m) = self.responses.lock() {
            *m.entry((model.to_string(), deployment.to_string(), status))
                .or_insert(0) += 1;
        }
    }

    pub fn rejected(&self, model: &str, deployment: &str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry((model.to_string(), deployment.to_string()))
                .or_insert(0) += 1;
        }
    }

    pub fn local(&self, status: u16) {
        if let Ok(mut m) = self.local.lock() {
            *m.entry(status).or_insert(0) += 1;
        }
    }

    pub fn usage(&self, tenant: &str, deployment: &str, prompt: u64, completion: u64, cost: f64) {
        if let Ok(mut m) = self.usage.lock() {
            let t = m
                .entry((tenant.to_string(), deployment.to_string()))
                .or_default();
            t.requests += 1;
            t.prompt_tokens += prompt;
            t.completion_tokens += completion;
            t.cost_usd += cost;
        }
    }

    /// `extra`: gauges from the live state (breakers, in flight).
    pub fn render(&self, extra: &str) -> String {
        let mut o = String::with_capacity(8192);
        self.added.render(
            &mut o,
            "skyward_gateway_added_latency_seconds",
            "Time the gateway adds: total minus time waiting on the upstream.",
        );
        self.upstream.render(
            &mut o,
            "skyward_gateway_upstream_latency_seconds",
            "Upstream time to the full response (or first token when streaming).",
        );
        let _ = writeln!(o, "# HELP skyward_gateway_retries_total Attempts after the first.\n# TYPE skyward_gateway_retries_total counter\nskyward_gateway_retries_total {}", self.retries.load(Ordering::Relaxed));
        let _ = writeln!(o, "# HELP skyward_gateway_reloads_total Configuration reloads (applied, refused).\n# TYPE skyward_gateway_reloads_total counter\nskyward_gateway_reloads_total{{result=\"applied\"}} {}\nskyward_gateway_reloads_total{{result=\"refused\"}} {}", self.reloads.load(Ordering::Relaxed), self.reload_errors.load(Ordering::Relaxed));
        if let Ok(m) = self.responses.lock() {
            let _ = writeln!(o, "# HELP skyward_gateway_upstream_responses_total Upstream answers by model, deployment and status.\n# TYPE skyward_gateway_upstream_responses_total counter");
            for ((model, dep, code), n) in m.iter() {
                let _ = writeln!(o, "skyward_gateway_upstream_responses_total{{model=\"{}\",deployment=\"{}\",code=\"{code}\"}} {n}", esc(model), esc(dep));
            }
        }
        if let Ok(m) = self.rejected.lock() {
            let _ = writeln!(o, "# HELP skyward_gateway_upstream_rejections_total Times a deployment refused the gateway itself (401, 403, 404: its key or its deployment name); alert on any.\n# TYPE skyward_gateway_upstream_rejections_total counter");
            for ((model, dep), n) in m.iter() {
                let _ = writeln!(o, "skyward_gateway_upstream_rejections_total{{model=\"{}\",deployment=\"{}\"}} {n}", esc(model), esc(dep));
            }
        }
        if let Ok(m) = self.local.lock() {
            let _ = writeln!(o, "# HELP skyward_gateway_local_responses_total Answers the gateway gave itself (auth, limits, no deployment) by status.\n# TYPE skyward_gateway_local_responses_total counter");
            for (code, n) in m.iter() {
                let _ = writeln!(
                    o,
                    "skyward_gateway_local_responses_total{{code=\"{code}\"}} {n}"
                );
            }
        }
        if let Ok(m) = self.usage.lock() {
            let _ = writeln!(o, "# HELP skyward_gateway_tokens_total Tokens by tenant, deployment and kind.\n# TYPE skyward_gateway_tokens_total counter");
            for ((t, d), u) in m.iter() {
                let _ = writeln!(o, "skyward_gateway_tokens_total{{tenant=\"{}\",deployment=\"{}\",kind=\"prompt\"}} {}", esc(t), esc(d), u.prompt_tokens);
                let _ = writeln!(o, "skyward_gateway_tokens_total{{tenant=\"{}\",deployment=\"{}\",kind=\"completion\"}} {}", esc(t), esc(d), u.completion_tokens);
            }
            let _ = writeln!(o, "# HELP skyward_gateway_cost_usd_total Cost at deployment prices by tenant and deployment.\n# TYPE skyward_gateway_cost_usd_total counter");
            for ((t, d), u) in m.iter() {
                let _ = writeln!(
                    o,
                    "skyward_gateway_cost_usd_total{{tenant=\"{}\",deployment=\"{}\"}} {}",
                    esc(t),
                    esc(d),
                    u.cost_usd
                );
            }
        }
        o.push_str(extra);
        o
    }
}
