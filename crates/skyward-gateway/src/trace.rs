//! OpenTelemetry traces of the gateway's requests, exported as OTLP/HTTP
//! JSON: one server span per request and one client span per upstream
//! attempt, with the GenAI semantic conventions' attributes
//! (`gen_ai.operation.name`, `gen_ai.request.model`,
//! `gen_ai.provider.name`, `gen_ai.usage.input_tokens`, …). A W3C
//! `traceparent` from the client is continued, and each attempt sends its
//! own to the upstream.
//!
//! Spans are queued (bounded: beyond `QUEUE_SPANS_MAX` they are dropped
//! and counted, never held) and sent in batches by one task; a collector
//! that is down costs a counter, not memory or latency.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Spans waiting for export at most; beyond, new ones are dropped.
pub const QUEUE_SPANS_MAX: usize = 8_192;
/// Spans per export request at most.
pub const BATCH_SPANS_MAX: usize = 512;

/// Counters of the exporter, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed_exports: AtomicU64,
}

/// Where spans go: a bounded queue to the export task.
#[derive(Clone)]
pub struct Tracer {
    tx: mpsc::Sender<Value>,
    pub counters: Arc<Counters>,
    sample_ratio: f64,
}

fn hex(b: &[u8]) -> String {
    crate::sigv4::hex(b)
}

fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    // The system's random source; all zeros (an invalid id, never
    // exported as valid) only if it fails.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

#[allow(clippy::disallowed_methods)] // spans are dated by the wall clock
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A W3C `traceparent`: (trace id, parent span id, sampled).
pub fn parse_traceparent(h: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut p = h.trim().split('-');
    let (v, t, s, f) = (p.next()?, p.next()?, p.next()?, p.next()?);
    if v.len() != 2 || v == "ff" || t.len() != 32 || s.len() != 16 || f.len() != 2 {
        return None;
    }
    let unhex = |x: &str, out: &mut [u8]| -> Option<()> {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(x.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(())
    };
    let (mut tid, mut sid) = ([0u8; 16], [0u8; 8]);
    unhex(t, &mut tid)?;
    unhex(s, &mut sid)?;
    let flags = u8::from_str_radix(f, 16).ok()?;
    if tid == [0; 16] || sid == [0; 8] {
        return None;
    }
    Some((tid, sid, flags & 1 == 1))
}

fn attr(k: &str, v: &Value) -> Value {
    let value = match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": k, "value": value})
}

/// One span being built.
struct Span {
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    /// 2 server, 3 client.
    kind: u8,
    start_ns: u64,
    end_ns: Option<u64>,
    attrs: Vec<(String, Value)>,
    error: Option<String>,
}

impl Span {
    fn otlp(&self, trace_id: &[u8; 16]) -> Value {
        let mut v = json!({
            "traceId": hex(trace_id),
            "spanId": hex(&self.id),
            "name": self.name,
            "kind": self.kind,
            "startTimeUnixNano": self.start_ns.to_string(),
            "endTimeUnixNano": self.end_ns.unwrap_or_else(now_ns).to_string(),
            "attributes": self.attrs.iter().map(|(k, v)| attr(k, v)).collect::<Vec<_>>(),
            "status": match &self.error {
                Some(m) => json!({"code": 2, "message": m}),
                None => json!({"code": 0}),
            },
        });
        if let Some(p) = &self.parent {
            v["parentSpanId"] = json!(hex(p));
        }
        v
    }
}

struct State {
    trace_id: [u8; 16],
    request: Span,
    attempts: Vec<Span>,
}

/// A request's trace: its spans are sent when the last holder lets go
/// (the request's end, or its stream's).
pub struct RequestTrace {
    state: Mutex<State>,
    tracer: Tracer,
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        let Ok(s) = self.state.get_mut() else {
            return;
        };
        let end = now_ns();
        let mut spans = Vec::with_capacity(1 + s.attempts.len());
        for a in &mut s.attempts {
            a.end_ns.get_or_insert(end);
            spans.push(a.otlp(&s.trace_id));
        }
        s.request.end_ns.get_or_insert(end);
        spans.push(s.request.otlp(&s.trace_id));
        for sp in spans {
            if self.tracer.tx.try_send(sp).is_err() {
                self.tracer.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `gen_ai.provider.name` for a deployment's API and provider.
fn provider_name(api: crate::config::Api, provider: &str) -> String {
    use crate::config::Api;
    match api {
        Api::Azure => "azure.ai.openai".into(),
        Api::Anthropic => "anthropic".into(),
        Api::Bedrock => "aws.bedrock".into(),
        Api::Vertex => "gcp.vertex_ai".into(),
        Api::OpenAi => match provider {
            "openai" => "openai".into(),
            other => other.to_string(),
        },
    }
}

impl RequestTrace {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Sets an attribute of the request span.
    pub fn set(&self, k: &str, v: Value) {
        self.with(|s| {
            s.request.attrs.retain(|(n, _)| n != k);
            s.request.attrs.push((k.to_string(), v));
        });
    }

    /// The request's answer: its status, and an error when it failed.
    pub fn status(&self, code: u16) {
        self.set("http.response.status_code", json!(code));
        if code >= 400 {
            self.with(|s| {
                s.request.error.get_or_insert_with(|| code.to_string());
                s.request
                    .attrs
                    .push(("error.type".into(), json!(code.to_string())));
            });
        }
    }

    pub fn usage(&self, input: u64, output: u64) {
        self.set("gen_ai.usage.input_tokens", json!(input));
        self.set("gen_ai.usage.output_tokens", json!(output));
    }

    /// An attempt on a deployment starts: its span's index and the
    /// `traceparent` the upstream gets.
    pub fn attempt(
        &self,
        d: &crate::config::Deployment,
        operation: &str,
        n: u32,
    ) -> (usize, String) {
        let id: [u8; 8] = random();
        let host = d
            .url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let (addr, port) = match host.rsplit_once(':') {
            Some((a, p)) if p.parse::<u16>().is_ok() => (a.to_string(), p.parse::<u16>().ok()),
            _ => (host.clone(), None),
        };
        self.with(|s| {
            let mut attrs = vec![
                ("gen_ai.operation.name".to_string(), json!(operation)),
                (
                    "gen_ai.provider.name".to_string(),
                    json!(provider_name(d.api, &d.provider)),
                ),
                ("gen_ai.request.model".to_string(), json!(d.upstream_model)),
                ("server.address".to_string(), json!(addr)),
                ("skyward.deployment".to_string(), json!(d.name)),
                ("skyward.attempt".to_string(), json!(n)),
                ("cloud.region".to_string(), json!(d.region)),
            ];
            if let Some(p) = port {
                attrs.push(("server.port".to_string(), json!(p)));
            }
            s.attempts.push(Span {
                id,
                parent: Some(s.request.id),
                name: format!("{operation} {}", d.upstream_model),
                kind: 3,
                start_ns: now_ns(),
                end_ns: None,
                attrs,
                error: None,
            });
            (
                s.attempts.len() - 1,
                format!("00-{}-{}-01", hex(&s.trace_id), hex(&id)),
            )
        })
        .unwrap_or((usize::MAX, String::new()))
    }

    /// The upstream's answer status for an attempt.
    pub fn attempt_status(&self, i: usize, code: u16) {
        self.with(|s| {
            if let Some(a) = s.attempts.get_mut(i) {
                a.attrs
                    .push(("http.response.status_code".into(), json!(code)));
            }
        });
    }

    /// An attempt's end: the upstream's status (None: no answer) and
    /// the error's type when it failed.
    pub fn attempt_end(&self, i: usize, status: Option<u16>, error: Option<&str>) {
        self.with(|s| {
            if let Some(a) = s.attempts.get_mut(i) {
                if a.end_ns.is_some() {
                    return;
                }
                a.end_ns = Some(now_ns());
                if let Some(c) = status {
                    a.attrs.push(("http.response.status_code".into(), json!(c)));
                }
                if let Some(e) = error {
                    a.attrs.push(("error.type".into(), json!(e)));
                    a.error = Some(e.to_string());
                }
            }
        });
    }
}

impl Tracer {
    /// A request starts: a trace continuing the client's `traceparent`
    /// (when valid), or a new one; None when not sampled.
    pub fn start(
        &self,
        traceparent: Option<&str>,
        operation: &str,
        model: &str,
    ) -> Option<Arc<RequestTrace>> {
        let parent = traceparent.and_then(parse_traceparent);
        let (trace_id, parent_id) = match parent {
            Some((_, _, false)) => return None,
            Some((t, p, true)) => (t, Some(p)),
            None => {
                let t: [u8; 16] = random();
                // Head sampling by trace id: the same decision wherever it is made.
                let x = u64::from_be_bytes([t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]]);
                if (x as f64 / u64::MAX as f64) >= self.sample_ratio {
                    return None;
                }
                (t, None)
            }
        };
        Some(Arc::new(RequestTrace {
            state: Mutex::new(State {
                trace_id,
                request: Span {
                    id: random(),
                    parent: parent_id,
                    name: format!("{operation} {model}"),
                    kind: 2,
                    start_ns: now_ns(),
                    end_ns: None,
                    attrs: vec![
                        ("gen_ai.operation.name".into(), json!(operation)),
                        ("gen_ai.request.model".into(), json!(model)),
                    ],
                    error: None,
                },
                attempts: Vec::new(),
            }),
            tracer: self.clone(),
        }))
    }
}

/// The tracer and its export task's input: spans go to `endpoint`
/// (OTLP/HTTP JSON, like `http://collector:4318/v1/traces`) in batches.
pub fn tracer(sample_ratio: f64) -> (Tracer, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel(QUEUE_SPANS_MAX);
    (
        Tracer {
            tx,
            counters: Arc::new(Counters::default()),
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
        },
        rx,
    )
}

/// The body of one OTLP/HTTP JSON export of `spans`.
pub fn export_body(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            attr("service.name", &json!(service)),
            attr("telemetry.sdk.name", &json!("skyward-gateway")),
            attr("telemetry.sdk.language", &json!("rust")),
        ]},
        "scopeSpans": [{
            "scope": {"name": "skyward-gateway", "version": env!("CARGO_PKG_VERSION")},
            "spans": spans,
        }],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_as_the_w3c_spec_writes_it() {
        // The W3C Trace Context's own example.
        let (t, p, sampled) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p), "00f067aa0ba902b7");
        assert!(sampled);
        assert!(
            !parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .2
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn attributes_in_otlp_json() {
        assert_eq!(
            attr("n", &json!(12)),
            json!({"key": "n", "value": {"intValue": "12"}})
        );
        assert_eq!(
            attr("s", &json!("x")),
            json!({"key": "s", "value": {"stringValue": "x"}})
        );
        assert_eq!(
            attr("d", &json!(0.5)),
            json!({"key": "d", "value": {"doubleValue": 0.5}})
        );
    }
}
