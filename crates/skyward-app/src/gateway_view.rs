//! The inference gateway as the dashboard shows it: its Prometheus page
//! (`GET /metrics` of `skyward gateway run`) read into traffic, errors,
//! added latency, tokens and cost per tenant and deployment, and breaker
//! states. Pure: the server fetches the page, this reads it.

use serde::Serialize;
use std::collections::BTreeMap;

/// One sample of a Prometheus text page: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Lines read at most, and label pairs per line (a page is the gateway's
/// own, but it is read over the network: bounded).
pub const LINES_MAX: usize = 200_000;
const LABELS_MAX: usize = 16;

/// Reads a Prometheus text page (exposition format 0.0.4): comments and
/// blank lines skipped; a line that is not a sample is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i >= LINES_MAX {
            return Err(format!("more than {LINES_MAX} lines"));
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            sample(line).ok_or_else(|| format!("line {}: not a sample: {}", i + 1, clip(line)))?,
        );
    }
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut r = r;
        loop {
            r = r.trim_start_matches([',', ' ']);
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            if labels.len() >= LABELS_MAX {
                return None;
            }
            let eq = r.find('=')?;
            let key = r[..eq].trim().to_string();
            let mut value = String::new();
            let mut chars = r[eq + 1..].strip_prefix('"')?.char_indices();
            let end = loop {
                let (j, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break j,
                    other => value.push(other),
                }
            };
            labels.insert(key, value);
            r = &r[eq + 1..][1 + end + 1..];
        }
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    pub deployment: String,
    pub prompt_tokens: f64,
    pub completion_tokens: f64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeploymentState {
    pub model: String,
    pub deployment: String,
    /// false while its circuit breaker is open.
    pub up: bool,
    pub inflight: f64,
    pub latency_ewma_s: f64,
    /// Upstream answers by status code.
    pub responses: BTreeMap<String, f64>,
    /// Answers that were not 2xx, over all answers (None: none yet).
    pub error_ratio: Option<f64>,
}

/// A histogram's cumulative buckets, and quantiles read from them (the
/// upper bound of the bucket the quantile falls in).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: f64,
    pub sum_s: f64,
    /// (upper bound in seconds, cumulative count); +Inf last.
    pub buckets: Vec<(f64, f64)>,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GatewayView {
    pub usage: Vec<TenantUsage>,
    pub deployments: Vec<DeploymentState>,
    /// What the gateway adds (total minus time waiting on the upstream).
    pub added_latency: Latency,
    pub upstream_latency: Latency,
    /// Answers the gateway gave itself (auth, limits, no deployment).
    pub local_responses: BTreeMap<String, f64>,
    pub retries: f64,
}

fn label<'a>(s: &'a Sample, k: &str) -> &'a str {
    s.labels.get(k).map(String::as_str).unwrap_or("")
}

fn latency(samples: &[Sample], name: &str) -> Latency {
    let mut l = Latency::default();
    for s in samples {
        if s.name == format!("{name}_bucket") {
            let le = match label(s, "le") {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            if le.is_finite() || le == f64::INFINITY {
                l.buckets.push((le, s.value));
            }
        } else if s.name == format!("{name}_count") {
            l.count = s.value;
        } else if s.name == format!("{name}_sum") {
            l.sum_s = s.value;
        }
    }
    l.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let q = |p: f64| {
        if l.count <= 0.0 {
            return None;
        }
        let rank = p * l.count;
        l.buckets
            .iter()
            .find(|(_, c)| *c >= rank)
            .map(|(le, _)| *le)
    };
    l.p50_s = q(0.5);
    l.p99_s = q(0.99);
    l
}

/// The dashboard's view of one gateway's metrics page.
pub fn view(samples: &[Sample]) -> GatewayView {
    let mut usage: BTreeMap<(String, String), TenantUsage> = BTreeMap::new();
    let mut deps: BTreeMap<(String, String), DeploymentState> = BTreeMap::new();
    let mut v = GatewayView::default();
    for s in samples {
        let key = || {
            (
                label(s, "tenant").to_string(),
                label(s, "deployment").to_string(),
            )
        };
        let dep = || {
            (
                label(s, "model").to_string(),
                label(s, "deployment").to_string(),
            )
        };
        match s.name.as_str() {
            "skyward_gateway_tokens_total" => {
                let u = usage.entry(key()).or_default();
                match label(s, "kind") {
                    "prompt" => u.prompt_tokens += s.value,
                    "completion" => u.completion_tokens += s.value,
                    _ => {}
                }
            }
            "skyward_gateway_cost_usd_total" => usage.entry(key()).or_default().cost_usd += s.value,
            "skyward_gateway_deployment_up" => deps.entry(dep()).or_default().up = s.value > 0.5,
            "skyward_gateway_inflight" => deps.entry(dep()).or_default().inflight = s.value,
            "skyward_gateway_latency_ewma_seconds" => {
                deps.entry(dep()).or_default().latency_ewma_s = s.value
            }
            "skyward_gateway_upstream_responses_total" => {
                *deps
                    .entry(dep())
                    .or_default()
                    .responses
                    .entry(label(s, "code").to_string())
                    .or_insert(0.0) += s.value
            }
            "skyward_gateway_local_responses_total" => {
                *v.local_responses
                    .entry(label(s, "code").to_string())
                    .or_insert(0.0) += s.value
            }
            "skyward_gateway_retries_total" => v.retries += s.value,
            _ => {}
        }
    }
    v.usage = usage
        .into_iter()
        .map(|((t, d), mut u)| {
            u.tenant = t;
            u.deployment = d;
            u
        })
        .collect();
    v.deployments = deps
        .into_iter()
        .map(|((m, d), mut x)| {
            x.model = m;
            x.deployment = d;
            let all: f64 = x.responses.values().sum();
            let bad: f64 = x
                .responses
                .iter()
                .filter(|(c, _)| !c.starts_with('2'))
                .map(|(_, n)| n)
                .sum();
            x.error_ratio = (all > 0.0).then(|| bad / all);
            x
        })
        .collect();
    v.added_latency = latency(samples, "skyward_gateway_added_latency_seconds");
    v.upstream_latency = latency(samples, "skyward_gateway_upstream_latency_seconds");
    v
}

/// A gateway's counters at one read (totals since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Requests answered through a deployment (the added-latency count)
    /// and by the gateway itself (refused: auth, limits, no deployment).
    pub requests: f64,
    pub upstream_answers: f64,
    pub upstream_errors: f64,
    pub refused: f64,
    pub tokens: f64,
    pub cost_usd: f64,
    pub added_latency_sum_s: f64,
    pub added_latency_count: f64,
}

impl Totals {
    pub fn of(v: &GatewayView) -> Totals {
        let local: f64 = v.local_responses.values().sum();
        let refused: f64 = v
            .local_responses
            .iter()
            .filter(|(c, _)| !c.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        let mut t = Totals {
            requests: v.added_latency.count + local,
            refused,
            added_latency_sum_s: v.added_latency.sum_s,
            added_latency_count: v.added_latency.count,
            ..Totals::default()
        };
        for d in &v.deployments {
            for (code, n) in &d.responses {
                t.upstream_answers += n;
                if !code.starts_with('2') {
                    t.upstream_errors += n;
                }
            }
        }
        for u in &v.usage {
            t.tokens += u.prompt_tokens + u.completion_tokens;
            t.cost_usd += u.cost_usd;
        }
        t
    }

    fn any_below(&self, o: &Totals) -> bool {
        self.requests < o.requests
            || self.upstream_answers < o.upstream_answers
            || self.upstream_errors < o.upstream_errors
            || self.refused < o.refused
            || self.tokens < o.tokens
            || self.cost_usd < o.cost_usd
            || self.added_latency_count < o.added_latency_count
    }
}

/// What happened between two reads of a gateway.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub from_ms: i64,
    pub to_ms: i64,
    pub requests_per_s: f64,
    pub refused_per_s: f64,
    /// Upstream answers that were not 2xx, over all upstream answers in
    /// the interval (None: none).
    pub upstream_error_ratio: Option<f64>,
    pub tokens_per_s: f64,
    pub cost_usd_per_hour: f64,
    /// Mean time the gateway added to the requests of the interval.
    pub added_latency_mean_s: Option<f64>,
}

/// Reads of one gateway over time, kept by the server for the charts: at
/// most [`TRAFFIC_SAMPLES_MAX`]; a read that failed is kept as such (a
/// gap in the charts, and a time the gateway did not answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    samples: std::collections::VecDeque<(i64, Option<Totals>)>,
}

/// A day of reads 10 s apart.
pub const TRAFFIC_SAMPLES_MAX: usize = 8_640;

impl Traffic {
    pub fn record(&mut self, at_ms: i64, totals: Option<Totals>) {
        if self.samples.back().is_some_and(|(t, _)| at_ms <= *t) {
            return;
        }
        while self.samples.len() >= TRAFFIC_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((at_ms, totals));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Each interval between two consecutive successful reads; one where
    /// a counter went down (the gateway restarted) is left out.
    pub fn intervals(&self) -> Vec<Interval> {
        let mut out = Vec::new();
        for w in self.samples.iter().collect::<Vec<_>>().windows(2) {
            let ((t0, Some(a)), (t1, Some(b))) = (w[0], w[1]) else {
                continue;
            };
            if b.any_below(a) || t1 <= t0 {
                continue;
            }
            let s = (t1 - t0) as f64 / 1000.0;
            let answers = b.upstream_answers - a.upstream_answers;
            let count = b.added_latency_count - a.added_latency_count;
            out.push(Interval {
                from_ms: *t0,
                to_ms: *t1,
                requests_per_s: (b.requests - a.requests) / s,
                refused_per_s: (b.refused - a.refused) / s,
                upstream_error_ratio: (answers > 0.0)
                    .then(|| (b.upstream_errors - a.upstream_errors) / answers),
                tokens_per_s: (b.tokens - a.tokens) / s,
                cost_usd_per_hour: (b.cost_usd - a.cost_usd) / s * 3600.0,
                added_latency_mean_s: (count > 0.0)
                    .then(|| (b.added_latency_sum_s - a.added_latency_sum_s) / count),
            });
        }
        out
    }

    /// Times of the reads that failed (the gateway did not answer).
    pub fn unanswered_ms(&self) -> Vec<i64> {
        self.samples
            .iter()
            .filter(|(_, t)| t.is_none())
            .map(|(at, _)| *at)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates between reads, by hand: 10 s apart, 50 more requests (5/s),
    /// 2 of 40 upstream answers errors (5 %), 1,000 tokens (100/s), $0.02
    /// ($7.20 an hour), 0.5 s added over 50 requests (10 ms each). A
    /// restart (counters down) and a failed read leave no interval.
    #[test]
    fn traffic_between_reads_is_worked_out_as_by_hand() {
        let a = Totals {
            requests: 100.0,
            upstream_answers: 80.0,
            upstream_errors: 4.0,
            refused: 1.0,
            tokens: 5_000.0,
            cost_usd: 0.10,
            added_latency_sum_s: 1.0,
            added_latency_count: 99.0,
        };
        let b = Totals {
            requests: 150.0,
            upstream_answers: 120.0,
            upstream_errors: 6.0,
            refused: 1.0,
            tokens: 6_000.0,
            cost_usd: 0.12,
            added_latency_sum_s: 1.5,
            added_latency_count: 149.0,
        };
        let mut t = Traffic::default();
        t.record(0, Some(a));
        t.record(10_000, Some(b));
        t.record(10_000, Some(a)); // not after the last: dropped
        t.record(20_000, None);
        t.record(30_000, Some(b));
        t.record(40_000, Some(a)); // restarted
        let i = t.intervals();
        assert_eq!(i.len(), 1, "{i:?}");
        let x = &i[0];
        assert_eq!((x.from_ms, x.to_ms), (0, 10_000));
        assert!((x.requests_per_s - 5.0).abs() < 1e-12);
        assert_eq!(x.refused_per_s, 0.0);
        assert!((x.upstream_error_ratio.unwrap() - 0.05).abs() < 1e-12);
        assert!((x.tokens_per_s - 100.0).abs() < 1e-12);
        assert!((x.cost_usd_per_hour - 7.2).abs() < 1e-9);
        assert!((x.added_latency_mean_s.unwrap() - 0.01).abs() < 1e-12);
        assert_eq!(t.unanswered_ms(), vec![20_000]);
        for k in 0..TRAFFIC_SAMPLES_MAX + 5 {
            t.record(50_000 + k as i64, None);
        }
        assert_eq!(t.len(), TRAFFIC_SAMPLES_MAX);
    }

    /// Totals from the page below: requests 100 through deployments + 2
    /// refused; upstream 110 answers, 10 errors; 1,500 tokens; $0.0105.
    #[test]
    fn totals_of_a_page_are_its_counters_summed() {
        let t = Totals::of(&view(&parse(PAGE).unwrap()));
        assert_eq!(t.requests, 102.0);
        assert_eq!(
            (t.upstream_answers, t.upstream_errors, t.refused),
            (110.0, 10.0, 2.0)
        );
        assert_eq!(t.tokens, 1_500.0);
        assert!((t.cost_usd - 0.0105).abs() < 1e-12);
        assert_eq!(
            (t.added_latency_count, t.added_latency_sum_s),
            (100.0, 0.08)
        );
    }

    /// A page in the gateway's own format (as `metrics.rs` and
    /// `gateway.rs` write it), with figures worked by hand below.
    const PAGE: &str = r#"# HELP skyward_gateway_added_latency_seconds Time the gateway adds.
# TYPE skyward_gateway_added_latency_seconds histogram
skyward_gateway_added_latency_seconds_bucket{le="0.0005"} 60
skyward_gateway_added_latency_seconds_bucket{le="0.001"} 90
skyward_gateway_added_latency_seconds_bucket{le="0.005"} 99
skyward_gateway_added_latency_seconds_bucket{le="+Inf"} 100
skyward_gateway_added_latency_seconds_sum 0.08
skyward_gateway_added_latency_seconds_count 100
skyward_gateway_retries_total 3
skyward_gateway_upstream_responses_total{model="gpt-4o",deployment="azure-ptu",code="200"} 90
skyward_gateway_upstream_responses_total{model="gpt-4o",deployment="azure-ptu",code="429"} 10
skyward_gateway_upstream_responses_total{model="gpt-4o",deployment="openai",code="200"} 10
skyward_gateway_local_responses_total{code="401"} 2
skyward_gateway_tokens_total{tenant="team \"a\"",deployment="azure-ptu",kind="prompt"} 1200
skyward_gateway_tokens_total{tenant="team \"a\"",deployment="azure-ptu",kind="completion"} 300
skyward_gateway_cost_usd_total{tenant="team \"a\"",deployment="azure-ptu"} 0.0105
skyward_gateway_deployment_up{model="gpt-4o",deployment="azure-ptu"} 0
skyward_gateway_deployment_up{model="gpt-4o",deployment="openai"} 1
skyward_gateway_inflight{model="gpt-4o",deployment="openai"} 4
skyward_gateway_latency_ewma_seconds{model="gpt-4o",deployment="openai"} 0.25
"#;

    #[test]
    fn a_gateway_page_reads_as_by_hand() {
        let v = view(&parse(PAGE).unwrap());
        // Tokens and cost per tenant and deployment; the escaped quote in
        // the tenant's name comes back as a quote.
        assert_eq!(
            v.usage,
            vec![TenantUsage {
                tenant: "team \"a\"".into(),
                deployment: "azure-ptu".into(),
                prompt_tokens: 1200.0,
                completion_tokens: 300.0,
                cost_usd: 0.0105,
            }]
        );
        // azure-ptu: breaker open, 10 of 100 answers not 2xx; openai up.
        let ptu = &v.deployments[0];
        assert_eq!((ptu.deployment.as_str(), ptu.up), ("azure-ptu", false));
        assert_eq!(ptu.error_ratio, Some(0.1));
        let oai = &v.deployments[1];
        assert_eq!(
            (oai.up, oai.inflight, oai.latency_ewma_s, oai.error_ratio),
            (true, 4.0, 0.25, Some(0.0))
        );
        // 100 requests: the 50th falls in the first bucket (60 ≤ 0.5 ms),
        // the 99th in the 5 ms one (99 cumulative).
        assert_eq!(v.added_latency.count, 100.0);
        assert_eq!(v.added_latency.p50_s, Some(0.0005));
        assert_eq!(v.added_latency.p99_s, Some(0.005));
        assert_eq!(
            v.added_latency.buckets.last().map(|b| b.0),
            Some(f64::INFINITY)
        );
        assert_eq!(v.local_responses.get("401"), Some(&2.0));
        assert_eq!(v.retries, 3.0);
        // Nothing from the upstream histogram: no quantiles.
        assert_eq!(v.upstream_latency.p50_s, None);
    }

    #[test]
    fn a_line_that_is_not_a_sample_is_refused_naming_it() {
        for bad in [
            "just words here",
            "x{le=\"1\" 3",
            "x{a=unquoted} 1",
            "x 1.2.3",
            "x{a=\"1\"}",
        ] {
            let e = parse(&format!("ok 1\n{bad}\n")).unwrap_err();
            assert!(e.starts_with("line 2:"), "{bad}: {e}");
        }
        assert_eq!(parse("").unwrap(), Vec::new());
        let many: String = (0..LINES_MAX + 1).map(|_| "x 1\n").collect();
        assert!(parse(&many).is_err());
    }
}
