//! Recorded demand traces a simulated stream replays, read from their
//! published formats:
//!
//! - `alibaba-openb`: the Alibaba GPU cluster trace (cluster-trace-gpu-
//!   v2023, `openb_pod_list_*.csv`): one row per task with `num_gpu`,
//!   `creation_time`, `scheduled_time` and `deletion_time` in seconds from
//!   the trace's start. A task arrives at its creation and works from its
//!   scheduling to its deletion; tasks with no GPU or never scheduled are
//!   dropped (and counted). Tasks still running when the trace ends carry
//!   its end as their deletion, so their work is a lower bound.
//! - `azure-llm`: the Azure LLM inference trace (`AzureLLMInferenceTrace_
//!   *.csv`: TIMESTAMP, ContextTokens, GeneratedTokens). Requests are
//!   summed per window from the first request; each window asks for as
//!   many serving replicas as its tokens per second need, each running
//!   for the window, and the windows replay back to back.
//!
//! Columns are found by their header names, so extra columns and another
//! order are accepted. Errors name the file, line and column.

use crate::error::SpecError;
use skyward_sim::scenario::TraceRecord;

/// Rows a trace may hold.
pub const ROWS_MAX: usize = 2_000_000;
/// Tasks a trace may turn into (an LLM trace's windows each ask for
/// replicas: few rows with huge token counts ask for many).
pub const RECORDS_MAX: u64 = 2_000_000;
const MS_PER_HOUR: u64 = 3_600_000;

/// A parsed trace: its tasks in arrival order, its span, and what was
/// dropped and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub records: Vec<TraceRecord>,
    pub span_ms: u64,
    pub dropped: Vec<(&'static str, u64)>,
}

/// A line of a trace is at most this long.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Requests an Azure trace may have (the 2024 week-long conversation trace
/// has tens of millions): the read keeps only the tokens per window, so
/// memory does not grow with them.
pub const STREAMED_ROWS_MAX: u64 = 1_000_000_000;

/// A CSV file read line by line: its header, then one row at a time (each
/// line at most [`LINE_BYTES_MAX`]); blank lines are skipped.
struct Csv<'a> {
    reader: &'a mut dyn std::io::BufRead,
    file: &'a str,
    header: Vec<String>,
    line: usize,
    buf: Vec<u8>,
}

impl<'a> Csv<'a> {
    fn open(reader: &'a mut dyn std::io::BufRead, file: &'a str) -> Result<Csv<'a>, SpecError> {
        let mut c = Csv {
            reader,
            file,
            header: Vec::new(),
            line: 0,
            buf: Vec::new(),
        };
        let Some((_, l)) = c.next_line()? else {
            return Err(SpecError::at(file, Some(1), "header", "empty file".into()));
        };
        c.header = l
            .trim_start_matches('\u{feff}')
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        Ok(c)
    }

    /// The next line that is not blank, with its number.
    fn next_line(&mut self) -> Result<Option<(usize, String)>, SpecError> {
        use std::io::{BufRead, Read};
        loop {
            self.buf.clear();
            let n = (&mut *self.reader)
                .take(LINE_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| self.err(self.line + 1, "file", format!("cannot read: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.len() > LINE_BYTES_MAX {
                return Err(self.err(
                    self.line,
                    "row",
                    format!("longer than {LINE_BYTES_MAX} bytes"),
                ));
            }
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            let l = std::str::from_utf8(&self.buf)
                .map_err(|_| self.err(self.line, "row", "not UTF-8 text".into()))?;
            if !l.trim().is_empty() {
                return Ok(Some((self.line, l.to_string())));
            }
        }
    }

    /// A row's cells, as many as the header's.
    fn cells<'l>(&self, line: usize, l: &'l str) -> Result<Vec<&'l str>, SpecError> {
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if cells.len() != self.header.len() {
            return Err(self.err(
                line,
                "row",
                format!(
                    "{} cells, the header has {}",
                    cells.len(),
                    self.header.len()
                ),
            ));
        }
        Ok(cells)
    }

    fn column(&self, name: &str) -> Result<usize, SpecError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            SpecError::at(
                self.file,
                Some(1),
                name,
                format!("no '{name}' column in the header"),
            )
        })
    }

    fn err(&self, line: usize, col: &str, m: String) -> SpecError {
        SpecError::at(self.file, Some(line), col, m)
    }
}

/// Whole seconds (or empty: None).
fn seconds(c: &Csv<'_>, line: usize, col: &str, v: &str) -> Result<Option<u64>, SpecError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>()
        .ok()
        .filter(|s| *s <= 100 * 366 * 86_400)
        .map(Some)
        .ok_or_else(|| {
            c.err(
                line,
                col,
                format!("'{v}' is not whole seconds from 0 to 100 years"),
            )
        })
}

pub fn alibaba_openb(text: &str, file: &str) -> Result<Parsed, SpecError> {
    alibaba_openb_read(&mut text.as_bytes(), file)
}

/// [`alibaba_openb`] from a reader, row by row: at most [`ROWS_MAX`] rows.
pub fn alibaba_openb_read(
    reader: &mut dyn std::io::BufRead,
    file: &str,
) -> Result<Parsed, SpecError> {
    let mut c = Csv::open(reader, file)?;
    let (gpu, created, scheduled, deleted) = (
        c.column("num_gpu")?,
        c.column("creation_time")?,
        c.column("scheduled_time")?,
        c.column("deletion_time")?,
    );
    let (mut no_gpu, mut never, mut disordered, mut records) = (0u64, 0u64, 0u64, Vec::new());
    let mut rows = 0usize;
    while let Some((line, l)) = c.next_line()? {
        rows += 1;
        if rows > ROWS_MAX {
            return Err(c.err(line, "rows", format!("more than {ROWS_MAX} rows")));
        }
        let cells = c.cells(line, &l)?;
        let n: u32 = cells[gpu]
            .parse()
            .ok()
            .filter(|n| *n <= 4096)
            .ok_or_else(|| {
                c.err(
                    line,
                    "num_gpu",
                    format!("'{}' is not a GPU count from 0 to 4096", cells[gpu]),
                )
            })?;
        let at = seconds(&c, line, "creation_time", cells[created])?
            .ok_or_else(|| c.err(line, "creation_time", "empty".into()))?;
        let start = seconds(&c, line, "scheduled_time", cells[scheduled])?;
        let end = seconds(&c, line, "deletion_time", cells[deleted])?;
        if n == 0 {
            no_gpu += 1;
            continue;
        }
        let (Some(start), Some(end)) = (start, end) else {
            never += 1;
            continue;
        };
        // A recorded trace has the odd row out of order; it is dropped and
        // counted rather than refusing the whole file.
        if end < start || start < at {
            disordered += 1;
            continue;
        }
        records.push(TraceRecord {
            at_ms: at * 1000,
            // A task deleted the second it was scheduled still ran.
            hours: (end - start).max(1) as f64 / 3600.0,
            count: Some(n),
        });
    }
    finish(
        records,
        file,
        vec![
            ("no GPU", no_gpu),
            ("never scheduled", never),
            ("times out of order", disordered),
        ],
    )
}

pub fn azure_llm(
    text: &str,
    file: &str,
    tokens_per_second_per_replica: f64,
    window_ms: u64,
) -> Result<Parsed, SpecError> {
    azure_llm_read(
        &mut text.as_bytes(),
        file,
        tokens_per_second_per_replica,
        window_ms,
    )
}

/// [`azure_llm`] from a reader, line by line: tokens per window are all it
/// keeps, whatever the trace's length.
pub fn azure_llm_read(
    reader: &mut dyn std::io::BufRead,
    file: &str,
    tokens_per_second_per_replica: f64,
    window_ms: u64,
) -> Result<Parsed, SpecError> {
    let mut c = Csv::open(reader, file)?;
    let (ts, ctx, gen) = (
        c.column("timestamp")?,
        c.column("contexttokens")?,
        c.column("generatedtokens")?,
    );
    // Tokens per window, from the first request.
    let mut first: Option<i64> = None;
    let mut windows: Vec<f64> = Vec::new();
    let mut rows = 0u64;
    while let Some((line, l)) = c.next_line()? {
        rows += 1;
        if rows > STREAMED_ROWS_MAX {
            return Err(c.err(line, "rows", format!("more than {STREAMED_ROWS_MAX} rows")));
        }
        let cells = c.cells(line, &l)?;
        let ms = timestamp_ms(cells[ts]).ok_or_else(|| {
            c.err(
                line,
                "TIMESTAMP",
                format!("'{}' is not YYYY-MM-DD HH:MM:SS[.f]", cells[ts]),
            )
        })?;
        let tokens = |i: usize, col: &str| {
            cells[i]
                .parse::<u64>()
                .ok()
                .filter(|t| *t <= 10_000_000)
                .ok_or_else(|| c.err(line, col, format!("'{}' is not a token count", cells[i])))
        };
        let n = tokens(ctx, "ContextTokens")? + tokens(gen, "GeneratedTokens")?;
        let t0 = *first.get_or_insert(ms);
        if ms < t0 {
            return Err(c.err(line, "TIMESTAMP", "earlier than the first request".into()));
        }
        let w = ((ms - t0) as u64 / window_ms) as usize;
        if w >= 1_000_000 {
            return Err(c.err(
                line,
                "TIMESTAMP",
                "the trace spans more than a million windows".into(),
            ));
        }
        if windows.len() <= w {
            windows.resize(w + 1, 0.0);
        }
        windows[w] += n as f64;
    }
    let per_window = tokens_per_second_per_replica * window_ms as f64 / 1000.0;
    let hours = window_ms as f64 / MS_PER_HOUR as f64;
    let replicas: Vec<u64> = windows
        .iter()
        .map(|tokens| (tokens / per_window).ceil() as u64)
        .collect();
    let total = replicas.iter().fold(0u64, |a, r| a.saturating_add(*r));
    if total > RECORDS_MAX {
        return Err(SpecError::at(
            file,
            None,
            "tokens_per_second_per_replica",
            format!(
                "the trace asks for {total} replica-windows at this rate, more than {RECORDS_MAX}: \
                 give a higher rate per replica or longer windows"
            ),
        ));
    }
    let mut records = Vec::with_capacity(total as usize);
    for (w, replicas) in replicas.iter().enumerate() {
        for _ in 0..*replicas {
            records.push(TraceRecord {
                at_ms: w as u64 * window_ms,
                hours,
                count: None,
            });
        }
    }
    let mut p = finish(records, file, Vec::new())?;
    // The windows replay back to back.
    p.span_ms = windows.len() as u64 * window_ms;
    Ok(p)
}

fn finish(
    mut records: Vec<TraceRecord>,
    file: &str,
    dropped: Vec<(&'static str, u64)>,
) -> Result<Parsed, SpecError> {
    if records.is_empty() {
        return Err(SpecError::at(
            file,
            None,
            "rows",
            "no task to replay".into(),
        ));
    }
    records.sort_by_key(|r| r.at_ms);
    let last = records.last().map_or(0, |r| r.at_ms);
    Ok(Parsed {
        records,
        // Replayed back to back: the next pass starts a second after the
        // last arrival, and never sooner than an hour after the first.
        span_ms: (last + 1000).max(MS_PER_HOUR),
        dropped,
    })
}

/// `YYYY-MM-DD HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]` as ms since the
/// epoch (UTC): the 2023 Azure traces have no offset, the 2024 ones end in
/// `+00:00`.
fn timestamp_ms(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    // An offset from UTC, if any, after the seconds.
    let (time, offset_min) = match time.find(['Z', 'z', '+', '-']) {
        None => (time, 0),
        Some(i) => {
            let (t, zone) = time.split_at(i);
            let off = if zone.eq_ignore_ascii_case("z") {
                0
            } else {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
                if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let (hh, mm) = (
                    digits[..2].parse::<i64>().ok()?,
                    digits[2..].parse::<i64>().ok()?,
                );
                if hh > 23 || mm > 59 {
                    return None;
                }
                sign * (hh * 60 + mm)
            };
            (t, off)
        }
    };
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms_frac = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        f.parse::<i64>().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms_frac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Rows whose times run backwards are dropped and counted, not fatal;
    /// a value that is not a time still is, naming its line.
    #[test]
    fn alibaba_rows_out_of_order_are_dropped_and_counted() {
        let head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";
        let text = format!(
            "{head}a,1,1,2,1000,,LS,Running,10,3610,10\n\
             b,1,1,1,1000,V100M16|V100M32,LS,Running,20,15,30\n\
             c,1,1,1,1000,,LS,Running,40,100,30\n\
             d,1,1,0,0,,BE,Running,50,60,50\n"
        );
        let p = alibaba_openb(&text, "t.csv").unwrap();
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].count, Some(2));
        assert!((p.records[0].hours - 1.0).abs() < 1e-12);
        assert!(
            p.dropped.contains(&("times out of order", 2)),
            "{:?}",
            p.dropped
        );
        assert!(p.dropped.contains(&("no GPU", 1)));
        let bad = format!("{head}a,1,1,2,1000,,LS,Running,10,soon,10\n");
        let e = alibaba_openb(&bad, "t.csv")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("t.csv") && e.contains("2") && e.contains("deletion_time"),
            "{e}"
        );
    }

    /// An LLM trace of 2.1 million requests (more than a whole-file read
    /// takes) streams through in bounded memory: one request of 100
    /// tokens every 100 ms is 3,000 a 5-minute window, 300,000 tokens,
    /// which at 1,000 tokens/s a replica is one replica per window, for
    /// 700 windows (210,000 s). The lines are made as they are read.
    #[test]
    fn a_long_llm_trace_streams_with_only_its_windows_kept() {
        struct Lines {
            i: u64,
            n: u64,
            pending: Vec<u8>,
        }
        impl std::io::Read for Lines {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.pending.is_empty() {
                    if self.i > self.n {
                        return Ok(0);
                    }
                    self.pending = if self.i == 0 {
                        b"TIMESTAMP,ContextTokens,GeneratedTokens\n".to_vec()
                    } else {
                        let ms = (self.i - 1) * 100;
                        let (d, rest) = (ms / 86_400_000, ms % 86_400_000);
                        format!(
                            "2024-05-{:02} {:02}:{:02}:{:02}.{:03}000+00:00,90,10\n",
                            10 + d,
                            rest / 3_600_000,
                            rest / 60_000 % 60,
                            rest / 1000 % 60,
                            rest % 1000
                        )
                        .into_bytes()
                    };
                    self.i += 1;
                }
                let k = out.len().min(self.pending.len());
                out[..k].copy_from_slice(&self.pending[..k]);
                self.pending.drain(..k);
                Ok(k)
            }
        }
        let n = 2_100_000;
        assert!(n > ROWS_MAX as u64);
        let mut r = std::io::BufReader::new(Lines {
            i: 0,
            n,
            pending: Vec::new(),
        });
        let p = azure_llm_read(&mut r, "week.csv", 1_000.0, 300_000).unwrap();
        assert_eq!(p.records.len(), 700);
        assert!(p
            .records
            .iter()
            .all(|x| (x.hours - 5.0 / 60.0).abs() < 1e-12));
        assert_eq!(p.records[699].at_ms, 699 * 300_000);
        assert_eq!(p.span_ms, 700 * 300_000);
    }

    /// A line past the bound stops the read at that line, before it is
    /// held whole.
    #[test]
    fn an_endless_line_is_refused_at_its_line() {
        let mut text =
            b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,1,1\n".to_vec();
        text.extend(std::iter::repeat_n(b'9', LINE_BYTES_MAX + 10));
        let e = azure_llm_read(&mut text.as_slice(), "t.csv", 1.0, 60_000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("t.csv") && e.contains('3') && e.contains("longer than"),
            "{e}"
        );
    }

    #[test]
    fn timestamps_by_hand() {
        // 2023-11-16 is day 19,677 since 1970-01-01.
        assert_eq!(
            timestamp_ms("2023-11-16 18:17:03.9799600"),
            Some(19_677 * 86_400_000 + (18 * 3600 + 17 * 60 + 3) * 1000 + 979)
        );
        assert_eq!(timestamp_ms("2023-13-01 00:00:00"), None);
        assert_eq!(timestamp_ms("yesterday"), None);
        // The 2024 traces' form, and offsets: 12:30+02:00 is 10:30 UTC.
        let day = 19_853 * 86_400_000; // 2024-05-10
        assert_eq!(
            timestamp_ms("2024-05-10 00:00:00.009930+00:00"),
            Some(day + 9)
        );
        assert_eq!(timestamp_ms("2024-05-10 00:00:01Z"), Some(day + 1_000));
        assert_eq!(
            timestamp_ms("2024-05-10 12:30:00+02:00"),
            Some(day + (10 * 60 + 30) * 60_000)
        );
        assert_eq!(
            timestamp_ms("2024-05-10T01:00:00-0130"),
            Some(day + (2 * 60 + 30) * 60_000)
        );
        assert_eq!(timestamp_ms("2024-05-10 00:00:00+2"), None);
        assert_eq!(timestamp_ms("2024-05-10 00:00:00+25:00"), None);
    }

    /// A few requests with huge token counts at a tiny rate per replica
    /// would ask for billions of replicas: refused, in bounded memory.
    #[test]
    fn an_llm_trace_asking_for_too_many_replicas_is_refused() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:00:00.0,10000000,10000000\n\
                    2023-11-16 23:00:00.0,10000000,10000000\n";
        let e = azure_llm(text, "t.csv", 0.001, 60_000).unwrap_err();
        assert!(e.message.contains("replica-windows"), "{}", e.message);
        // At a sane rate the same file is two windows' replicas.
        let p = azure_llm(text, "t.csv", 1.0e6, 60_000).unwrap();
        assert_eq!(p.records.len(), 2);
    }
}
