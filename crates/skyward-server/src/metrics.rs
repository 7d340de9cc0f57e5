//! Prometheus text exposition (version 0.0.4), written by hand: a few
//! counters, gauges and histograms need no metrics framework.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Latency buckets in seconds.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: LATENCY_BUCKETS_S
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe_ms(&self, ms: u64) {
        let s = ms as f64 / 1000.0;
        for (b, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            if s <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us.fetch_add(ms * 1000, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

#[derive(Debug, Clone, Default)]
pub struct SiteGauge {
    pub site: String,
    pub provider: String,
    pub accelerators_used: u32,
    pub accelerators: u32,
    pub running: u32,
    pub alive: bool,
    /// When it was last heard from (its heartbeat), if ever.
    pub last_heartbeat_ms: Option<i64>,
}

/// A site's state at the last look: up, its runs then, since when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteLook {
    pub up: bool,
    pub running: u32,
    pub since_ms: i64,
}

/// The health events between the last look (`seen`, updated) and
/// `gauges` at `now_ms`: a site that went down (taken out by a drill
/// when `drill_until` says so, else lost: not heard within the heartbeat
/// timeout) or came back. A site seen for the first time is only noted.
pub fn health_changes(
    seen: &mut std::collections::BTreeMap<String, SiteLook>,
    gauges: &[SiteGauge],
    now_ms: i64,
    drill_until: impl Fn(&str) -> Option<i64>,
) -> Vec<crate::db::SiteEvent> {
    let mut out = Vec::new();
    let ago = |t: i64| skyward_executor::local::human_ms(now_ms.saturating_sub(t).max(0) as u64);
    for g in gauges {
        let look = SiteLook {
            up: g.alive,
            running: g.running,
            since_ms: now_ms,
        };
        let Some(before) = seen.get_mut(&g.site) else {
            seen.insert(g.site.clone(), look);
            continue;
        };
        if before.up == g.alive {
            before.running = g.running;
            continue;
        }
        let detail = if g.alive {
            format!("back: heard again after {} down", ago(before.since_ms))
        } else {
            let why = match (drill_until(&g.site), g.last_heartbeat_ms) {
                // What is left of it, to the second above (a look comes
                // a moment after the drill started).
                (Some(until), _) => format!(
                    "taken out by an outage drill for {}",
                    skyward_executor::local::human_ms(
                        (until.saturating_sub(now_ms).max(0) as u64).div_ceil(1000) * 1000
                    )
                ),
                (None, Some(t)) => format!("lost: not heard from for {}", ago(t)),
                (None, None) => "lost: never heard from".to_string(),
            };
            format!(
                "{why}; {} run(s) there at the last look are requeued",
                before.running
            )
        };
        out.push(crate::db::SiteEvent {
            at_ms: now_ms,
            site: g.site.clone(),
            event: if g.alive { "up" } else { "down" },
            detail,
        });
        *before = look;
    }
    out
}

/// Sites' use over time, kept by the leading replica in memory for the
/// dashboard: a sample at most every [`SITE_SAMPLE_MS`], the last
/// [`SITE_SAMPLES_MAX`] (a day at that spacing; fewer past
/// [`SITE_CELLS_MAX`] sites × samples). A change in the set of sites
/// starts it afresh.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SiteHistory {
    /// Site names, in the order of each sample's entries.
    pub sites: Vec<String>,
    pub samples: std::collections::VecDeque<SiteSample>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteSample {
    pub at_ms: i64,
    /// Per site (as `SiteHistory::sites`): accelerators in use, capacity,
    /// whether it is up.
    pub used: Vec<u32>,
    pub capacity: Vec<u32>,
    pub up: Vec<bool>,
    /// Runs taken back from a site and requeued, and preemptions, since
    /// the server started (counters: the change between samples is what
    /// happened in between).
    pub requeued: u64,
    pub preemptions: u64,
}

pub const SITE_SAMPLE_MS: i64 = 10_000;
pub const SITE_SAMPLES_MAX: usize = 8_640;
/// Sites × samples kept at most: a thousand-site fleet keeps fewer
/// samples (2,000 here) rather than tens of megabytes per answer.
pub const SITE_CELLS_MAX: usize = 2_000_000;

impl SiteHistory {
    /// Adds a sample of `gauges` at `at_ms` unless the last is more
    /// recent than [`SITE_SAMPLE_MS`]; keeps the last [`SITE_SAMPLES_MAX`].
    pub fn record(&mut self, at_ms: i64, gauges: &[SiteGauge], requeued: u64, preemptions: u64) {
        let names: Vec<&str> = gauges.iter().map(|g| g.site.as_str()).collect();
        if names.len() != self.sites.len() || names.iter().zip(&self.sites).any(|(a, b)| *a != b) {
            self.sites = names.iter().map(|n| n.to_string()).collect();
            self.samples.clear();
        }
        if self
            .samples
            .back()
            .is_some_and(|s| at_ms - s.at_ms < SITE_SAMPLE_MS && at_ms >= s.at_ms)
        {
            return;
        }
        let keep = (SITE_CELLS_MAX / gauges.len().max(1)).clamp(2, SITE_SAMPLES_MAX);
        while self.samples.len() >= keep {
            self.samples.pop_front();
        }
        self.samples.push_back(SiteSample {
            at_ms,
            used: gauges.iter().map(|g| g.accelerators_used).collect(),
            capacity: gauges.iter().map(|g| g.accelerators).collect(),
            up: gauges.iter().map(|g| g.alive).collect(),
            requeued,
            preemptions,
        });
    }
}

#[derive(Debug)]
pub struct Metrics {
    pub submissions: AtomicU64,
    pub submissions_replayed: AtomicU64,
    /// Transactions that stored submissions (group commit: submissions
    /// over commits is the mean batch).
    pub submit_commits: AtomicU64,
    /// Transactions of the scheduler's own writes.
    pub scheduler_commits: AtomicU64,
    pub placements: AtomicU64,
    pub finished_ok: AtomicU64,
    pub finished_failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub requeued: AtomicU64,
    pub preemptions: AtomicU64,
    pub queue_depth: AtomicU64,
    pub leader: AtomicU64,
    pub cycle_us_last: AtomicU64,
    /// Placement to start on the site.
    pub dispatch_latency: Histogram,
    /// Submission to start.
    pub start_latency: Histogram,
    pub sites: Mutex<Vec<SiteGauge>>,
    pub site_history: Mutex<SiteHistory>,
    /// provider → (accelerator-hours, cost in micro-dollars).
    pub usage: Mutex<BTreeMap<String, (f64, i64)>>,
    /// (status code class) → count.
    pub http: Mutex<BTreeMap<u16, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            submissions: AtomicU64::new(0),
            submissions_replayed: AtomicU64::new(0),
            submit_commits: AtomicU64::new(0),
            scheduler_commits: AtomicU64::new(0),
            placements: AtomicU64::new(0),
            finished_ok: AtomicU64::new(0),
            finished_failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            cycle_us_last: AtomicU64::new(0),
            dispatch_latency: Histogram::new(),
            start_latency: Histogram::new(),
            sites: Mutex::new(Vec::new()),
            site_history: Mutex::new(SiteHistory::default()),
            usage: Mutex::new(BTreeMap::new()),
            http: Mutex::new(BTreeMap::new()),
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn add_usage(&self, provider: &str, accelerator_hours: f64, cost_micro: i64) {
        if let Ok(mut u) = self.usage.lock() {
            let e = u.entry(provider.to_string()).or_insert((0.0, 0));
            e.0 += accelerator_hours;
            e.1 += cost_micro;
        }
    }

    pub fn http_status(&self, code: u16) {
        if let Ok(mut h) = self.http.lock() {
            *h.entry(code).or_insert(0) += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut o,
            "skyward_submissions_total",
            "Workloads accepted (new).",
            &self.submissions,
        );
        counter(
            &mut o,
            "skyward_submissions_replayed_total",
            "Submissions answered from an idempotency key.",
            &self.submissions_replayed,
        );
        counter(
            &mut o,
            "skyward_submit_commits_total",
            "Transactions that stored submissions (submissions / commits = the mean group-commit batch).",
            &self.submit_commits,
        );
        counter(
            &mut o,
            "skyward_scheduler_commits_total",
            "Transactions of the scheduler's own writes.",
            &self.scheduler_commits,
        );
        counter(
            &mut o,
            "skyward_placements_total",
            "Dispatches of a workload to a site.",
            &self.placements,
        );
        counter(
            &mut o,
            "skyward_requeues_total",
            "Workloads taken back from a site and queued again.",
            &self.requeued,
        );
        counter(
            &mut o,
            "skyward_preemptions_total",
            "Runs stopped to make room for higher-priority work.",
            &self.preemptions,
        );
        counter(
            &mut o,
            "skyward_cancellations_total",
            "Workloads cancelled.",
            &self.cancelled,
        );
        let _ = writeln!(o, "# HELP skyward_finished_total Workloads that ended on a site.\n# TYPE skyward_finished_total counter");
        let _ = writeln!(
            o,
            "skyward_finished_total{{outcome=\"succeeded\"}} {}",
            self.finished_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "skyward_finished_total{{outcome=\"failed\"}} {}",
            self.finished_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP skyward_queue_depth Pending workloads.\n# TYPE skyward_queue_depth gauge\nskyward_queue_depth {}", self.queue_depth.load(Ordering::Relaxed));
        let _ = writeln!(o, "# HELP skyward_leader 1 if this replica schedules.\n# TYPE skyward_leader gauge\nskyward_leader {}", self.leader.load(Ordering::Relaxed));
        let _ = writeln!(o, "# HELP skyward_scheduler_iteration_seconds Duration of the last scheduler iteration.\n# TYPE skyward_scheduler_iteration_seconds gauge\nskyward_scheduler_iteration_seconds {}", self.cycle_us_last.load(Ordering::Relaxed) as f64 / 1e6);
        self.dispatch_latency.render(
            &mut o,
            "skyward_dispatch_latency_seconds",
            "Placement to start on the site.",
        );
        self.start_latency.render(
            &mut o,
            "skyward_submit_to_start_seconds",
            "Submission to start on a site.",
        );
        if let Ok(sites) = self.sites.lock() {
            let _ = writeln!(o, "# HELP skyward_site_running_workloads Workloads running per site.\n# TYPE skyward_site_running_workloads gauge");
            for s in sites.iter() {
                let _ = writeln!(
                    o,
                    "skyward_site_running_workloads{{site=\"{}\",provider=\"{}\"}} {}",
                    esc(&s.site),
                    esc(&s.provider),
                    s.running
                );
            }
            let _ = writeln!(o, "# HELP skyward_site_accelerators_used Accelerators in use per site.\n# TYPE skyward_site_accelerators_used gauge");
            for s in sites.iter() {
                let _ = writeln!(
                    o,
                    "skyward_site_accelerators_used{{site=\"{}\",provider=\"{}\"}} {}",
                    esc(&s.site),
                    esc(&s.provider),
                    s.accelerators_used
                );
            }
            let _ = writeln!(o, "# HELP skyward_site_accelerators Accelerators per site.\n# TYPE skyward_site_accelerators gauge");
            for s in sites.iter() {
                let _ = writeln!(
                    o,
                    "skyward_site_accelerators{{site=\"{}\",provider=\"{}\"}} {}",
                    esc(&s.site),
                    esc(&s.provider),
                    s.accelerators
                );
            }
            let _ = writeln!(o, "# HELP skyward_site_up 1 if the site is registered and heartbeating.\n# TYPE skyward_site_up gauge");
            for s in sites.iter() {
                let _ = writeln!(
                    o,
                    "skyward_site_up{{site=\"{}\",provider=\"{}\"}} {}",
                    esc(&s.site),
                    esc(&s.provider),
                    u8::from(s.alive)
                );
            }
        }
        if let Ok(u) = self.usage.lock() {
            let _ = writeln!(o, "# HELP skyward_accelerator_hours_total Accelerator-hours used, per provider (since this process started leading).\n# TYPE skyward_accelerator_hours_total counter");
            for (p, (h, _)) in u.iter() {
                let _ = writeln!(
                    o,
                    "skyward_accelerator_hours_total{{provider=\"{}\"}} {h}",
                    esc(p)
                );
            }
            let _ = writeln!(o, "# HELP skyward_cost_usd_total Cost of usage at site prices, per provider.\n# TYPE skyward_cost_usd_total counter");
            for (p, (_, c)) in u.iter() {
                let _ = writeln!(
                    o,
                    "skyward_cost_usd_total{{provider=\"{}\"}} {}",
                    esc(p),
                    *c as f64 / 1e6
                );
            }
        }
        if let Ok(h) = self.http.lock() {
            let _ = writeln!(o, "# HELP skyward_http_responses_total HTTP responses by status.\n# TYPE skyward_http_responses_total counter");
            for (code, n) in h.iter() {
                let _ = writeln!(o, "skyward_http_responses_total{{code=\"{code}\"}} {n}");
            }
        }
        o
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn gauge(site: &str, used: u32) -> SiteGauge {
        SiteGauge {
            site: site.into(),
            provider: "aws".into(),
            accelerators_used: used,
            accelerators: 8,
            running: 0,
            alive: true,
            last_heartbeat_ms: Some(0),
        }
    }

    /// Down (lost, or by a drill) and back, each once, with the runs
    /// there at the last look and how long it was down; the first look
    /// and an unchanged site say nothing.
    #[test]
    fn health_changes_say_when_a_site_went_down_why_and_when_it_came_back() {
        let mut seen = std::collections::BTreeMap::new();
        let mut a = gauge("a", 2);
        a.running = 3;
        let mut b = gauge("b", 0);
        assert!(health_changes(&mut seen, &[a.clone(), b.clone()], 1_000, |_| None).is_empty());
        assert!(health_changes(&mut seen, &[a.clone(), b.clone()], 2_000, |_| None).is_empty());
        // a lost its heartbeat (last heard at 2 s, now 20 s); b drilled
        // until 80 s.
        a.alive = false;
        a.last_heartbeat_ms = Some(2_000);
        b.alive = false;
        let e = health_changes(&mut seen, &[a.clone(), b.clone()], 20_000, |s| {
            (s == "b").then_some(80_000)
        });
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].site.as_str(), e[0].event), ("a", "down"));
        assert_eq!(
            e[0].detail,
            "lost: not heard from for 18s; 3 run(s) there at the last look are requeued"
        );
        assert_eq!((e[1].site.as_str(), e[1].event), ("b", "down"));
        assert!(
            e[1].detail
                .starts_with("taken out by an outage drill for 1m"),
            "{e:?}"
        );
        assert!(health_changes(&mut seen, &[a.clone(), b.clone()], 30_000, |_| None).is_empty());
        a.alive = true;
        let e = health_changes(&mut seen, &[a, b], 95_000, |_| None);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].event, e[0].detail.as_str()),
            ("up", "back: heard again after 1m15s down")
        );
    }

    /// Samples 10 s apart at most, the last day kept, a new set of sites
    /// starts afresh.
    #[test]
    fn site_history_is_spaced_bounded_and_follows_the_sites() {
        let mut h = SiteHistory::default();
        let two = [gauge("a", 1), gauge("b", 2)];
        h.record(0, &two, 0, 0);
        h.record(9_999, &two, 1, 0);
        assert_eq!(
            h.samples.len(),
            1,
            "a sample 9.999 s after the last is dropped"
        );
        h.record(10_000, &[gauge("a", 3), gauge("b", 4)], 2, 1);
        assert_eq!(h.samples.len(), 2);
        assert_eq!(
            (
                h.samples[1].used.clone(),
                h.samples[1].requeued,
                h.samples[1].preemptions
            ),
            (vec![3, 4], 2, 1)
        );
        for i in 0..(SITE_SAMPLES_MAX as i64 + 5) {
            h.record(20_000 + i * SITE_SAMPLE_MS, &two, 0, 0);
        }
        assert_eq!(h.samples.len(), SITE_SAMPLES_MAX);
        assert_eq!(
            h.samples[0].at_ms,
            20_000 + 6 * SITE_SAMPLE_MS - SITE_SAMPLE_MS
        );
        h.record(i64::MAX / 2, &[gauge("a", 0)], 0, 0);
        assert_eq!(
            (h.sites.clone(), h.samples.len()),
            (vec!["a".to_string()], 1)
        );
        // Many sites keep fewer samples: 1,000 sites, 2,000 samples.
        let many: Vec<SiteGauge> = (0..1_000).map(|i| gauge(&format!("s{i}"), 0)).collect();
        let mut h = SiteHistory::default();
        for i in 0..2_100 {
            h.record(i * SITE_SAMPLE_MS, &many, 0, 0);
        }
        assert_eq!(h.samples.len(), SITE_CELLS_MAX / 1_000);
    }
}
