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

#[cfg(test)]
mod tests {
    use super::*;

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
