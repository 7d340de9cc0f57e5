//! Workload arrivals from a stream's generator: a non-homogeneous Poisson
//! process (growth, daily and weekly seasonality) by thinning, and work
//! sizes from the stream's distribution. Each stream draws from its own
//! seeded generator, so every policy sees the same arrivals.

use crate::scenario::{Dist, Stream, Trace, MS_PER_DAY, MS_PER_HOUR, WORK_HOURS_MAX};
use skyward_core::Millis;
use skyward_model::rng::SplitMix64;

/// The growth year (365.25 days).
pub const MS_PER_YEAR: f64 = 365.25 * MS_PER_DAY as f64;
const MS_PER_WEEK: f64 = 7.0 * MS_PER_DAY as f64;
/// Thinning works a window at a time, with the window's highest rate.
const WINDOW_MS: Millis = MS_PER_DAY;

/// One stream's arrivals, as an iterator of [`Arrival`]s: nothing is
/// held but the generator's state (and a replayed trace's position).
#[derive(Debug, Clone)]
pub struct Arrivals {
    stream: Stream,
    rng: SplitMix64,
    t_ms: f64,
    end_ms: Millis,
    /// A replay's position: the pass over the trace, the next record,
    /// and copies of the current one still to come.
    pass: u64,
    record: usize,
    copies: u64,
}

/// A workload's arrival: when, its work in hours, and the accelerators
/// per node a trace's task asked for (None: the stream's).
pub type Arrival = (Millis, f64, Option<u32>);

/// A stream's own generator, from the run's seed and its name.
pub fn stream_rng(seed: u64, name: &str) -> SplitMix64 {
    let mut named = SplitMix64::from_name(name);
    SplitMix64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ named.next_u64())
}

/// Exponential with this rate (per unit of the caller's time).
pub fn exponential(rng: &mut SplitMix64, rate: f64) -> f64 {
    -(1.0 - rng.unit()).ln() / rate
}

fn normal(rng: &mut SplitMix64) -> f64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Work in hours, within (0, [`WORK_HOURS_MAX`]].
pub fn draw_hours(rng: &mut SplitMix64, d: &Dist) -> f64 {
    let h = match *d {
        Dist::Fixed { hours } => hours,
        Dist::Exponential { mean_hours } => exponential(rng, 1.0 / mean_hours),
        Dist::Uniform {
            min_hours,
            max_hours,
        } => min_hours + (max_hours - min_hours) * rng.unit(),
        Dist::LogNormal {
            median_hours,
            sigma,
        } => median_hours * (sigma * normal(rng)).exp(),
    };
    h.clamp(1e-6, WORK_HOURS_MAX)
}

impl Stream {
    /// Arrivals per ms at `t_ms` (0 outside the stream's window).
    pub fn rate_per_ms(&self, t_ms: f64) -> f64 {
        let base = self.arrivals_per_hour / MS_PER_HOUR as f64;
        let growth = (1.0 + self.growth_pct_per_year / 100.0)
            .max(0.0)
            .powf(t_ms / MS_PER_YEAR);
        // The daily swing peaks at 14:00 UTC; the weekly one a week-
        // quarter after the start date.
        let day_phase = (t_ms / MS_PER_DAY as f64 - 14.0 / 24.0 + 0.25) * std::f64::consts::TAU;
        let week_phase = (t_ms / MS_PER_WEEK) * std::f64::consts::TAU;
        let daily = 1.0 + self.daily_amplitude_pct / 100.0 * day_phase.sin();
        let weekly = 1.0 + self.weekly_amplitude_pct / 100.0 * week_phase.sin();
        (base * growth * daily * weekly).max(0.0)
    }

    fn rate_max_per_ms(&self, from_ms: f64, to_ms: f64) -> f64 {
        let base = self.arrivals_per_hour / MS_PER_HOUR as f64;
        let g = (1.0 + self.growth_pct_per_year / 100.0).max(0.0);
        let growth = g
            .powf(from_ms / MS_PER_YEAR)
            .max(g.powf(to_ms / MS_PER_YEAR));
        base * growth
            * (1.0 + self.daily_amplitude_pct.abs() / 100.0)
            * (1.0 + self.weekly_amplitude_pct.abs() / 100.0)
    }
}

impl Arrivals {
    pub fn new(stream: &Stream, seed: u64, horizon_ms: Millis) -> Arrivals {
        let end_ms = stream.until_ms.unwrap_or(horizon_ms).min(horizon_ms);
        Arrivals {
            rng: stream_rng(seed, &stream.name),
            stream: stream.clone(),
            t_ms: stream.from_ms as f64,
            end_ms,
            pass: 0,
            record: 0,
            copies: 0,
        }
    }
}

impl Arrivals {
    /// The next task of a replayed trace: each record is copied
    /// ⌊m⌋ times, plus once more with probability m − ⌊m⌋, where m is the
    /// scale times the stream's growth at the record's time.
    fn replay(&mut self, trace: &Trace) -> Option<Arrival> {
        let span = trace.span_ms.max(1);
        loop {
            let rec = trace.records.get(self.record)?;
            let at = self
                .stream
                .from_ms
                .saturating_add(self.pass.saturating_mul(span))
                .saturating_add(rec.at_ms);
            if at >= self.end_ms {
                return None;
            }
            if self.copies == 0 {
                let g = (1.0 + self.stream.growth_pct_per_year / 100.0)
                    .max(0.0)
                    .powf(at as f64 / MS_PER_YEAR);
                let m = (trace.scale * g).max(0.0);
                let whole = m.floor();
                self.copies = whole as u64 + u64::from(self.rng.unit() < m - whole);
                if self.copies == 0 {
                    self.advance(trace);
                    continue;
                }
            }
            self.copies -= 1;
            if self.copies == 0 {
                self.advance(trace);
            }
            return Some((at, rec.hours.clamp(1e-6, WORK_HOURS_MAX), rec.count));
        }
    }

    fn advance(&mut self, trace: &Trace) {
        self.record += 1;
        if self.record >= trace.records.len() {
            self.record = 0;
            self.pass += 1;
        }
    }
}

impl Iterator for Arrivals {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        if let Some(trace) = self.stream.trace.clone() {
            return self.replay(&trace);
        }
        if let Some(every) = self.stream.every_ms {
            let t = self.t_ms as Millis;
            if t >= self.end_ms {
                return None;
            }
            self.t_ms += every.max(1) as f64;
            let hours = draw_hours(&mut self.rng, &self.stream.hours);
            return Some((t, hours, None));
        }
        loop {
            if self.t_ms >= self.end_ms as f64 {
                return None;
            }
            let window_end = ((self.t_ms as Millis / WINDOW_MS + 1) * WINDOW_MS) as f64;
            let rate_max = self.stream.rate_max_per_ms(self.t_ms, window_end);
            if rate_max <= 0.0 {
                self.t_ms = window_end;
                continue;
            }
            let t = self.t_ms + exponential(&mut self.rng, rate_max);
            if t >= window_end {
                // Memoryless: start again at the window's end with its rate.
                self.t_ms = window_end;
                continue;
            }
            self.t_ms = t;
            if self.rng.unit() * rate_max > self.stream.rate_per_ms(t) {
                continue;
            }
            if t >= self.end_ms as f64 {
                return None;
            }
            let hours = draw_hours(&mut self.rng, &self.stream.hours);
            return Some((t as Millis, hours, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::WORK_HOURS_MAX;

    /// A lognormal with sigma 5 reaches 10^13 times its median: unbounded,
    /// a workload's walltime in ms would overflow the clock. Every draw
    /// stays within 100 years, and a tame distribution is left alone.
    #[test]
    fn drawn_work_is_bounded() {
        let mut rng = SplitMix64::new(1);
        let wild = Dist::LogNormal {
            median_hours: 800_000.0,
            sigma: 5.0,
        };
        let mut top = 0.0f64;
        for _ in 0..100_000 {
            let h = draw_hours(&mut rng, &wild);
            assert!(h > 0.0 && h <= WORK_HOURS_MAX, "{h}");
            top = top.max(h);
        }
        assert_eq!(top, WORK_HOURS_MAX);
        let tame = Dist::Fixed { hours: 10.0 };
        assert_eq!(draw_hours(&mut rng, &tame), 10.0);
    }
}
