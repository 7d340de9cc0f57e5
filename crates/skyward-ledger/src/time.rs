//! UTC timestamps as integer seconds, parsed without a time library:
//! `2024-09-18 22:00:00`, `2023-01-01T00:00:00Z`, `2023-01-01T00:00:00+00:00`,
//! `2023-01-01`. Only UTC (or an explicit zero offset) is accepted: FOCUS
//! requires UTC, and a silent offset would shift charges between days.

use serde::Serialize;
use std::fmt;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Timestamp(pub i64);

pub const SECONDS_PER_HOUR: i64 = 3_600;
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl Timestamp {
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let t = text.trim();
        let bad = || format!("'{t}' is not a UTC date-time (e.g. 2024-09-18T22:00:00Z)");
        let b = t.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |s: &str| -> Result<i64, String> {
            if s.bytes().all(|c| c.is_ascii_digit()) && !s.is_empty() {
                s.parse::<i64>().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let y = num(&t[0..4])?;
        let m = num(&t[5..7])? as u32;
        let d = num(&t[8..10])? as u32;
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return Err(bad());
        }
        let mut secs = days_from_civil(y, m, d) * SECONDS_PER_DAY;
        let rest = &t[10..];
        if rest.is_empty() {
            return Ok(Timestamp(secs));
        }
        let rest = rest
            .strip_prefix('T')
            .or_else(|| rest.strip_prefix(' '))
            .ok_or_else(bad)?;
        let (clock, zone) = match rest.find(['Z', '+', '-']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !(zone.is_empty()
            || zone == "Z"
            || zone == "+00:00"
            || zone == "-00:00"
            || zone == "+0000")
        {
            return Err(format!(
                "'{t}': only UTC is accepted (FOCUS date-times are UTC)"
            ));
        }
        let clock = clock.split('.').next().unwrap_or(clock);
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let h = num(parts[0])?;
        let mi = num(parts[1])?;
        let s = if parts.len() == 3 { num(parts[2])? } else { 0 };
        if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi > 0 || s > 0)) {
            return Err(bad());
        }
        secs += h * SECONDS_PER_HOUR + mi * 60 + s;
        Ok(Timestamp(secs))
    }

    pub fn from_ymd(y: i64, m: u32, d: u32) -> Timestamp {
        Timestamp(days_from_civil(y, m, d) * SECONDS_PER_DAY)
    }

    pub fn day(self) -> i64 {
        self.0.div_euclid(SECONDS_PER_DAY)
    }

    pub fn hour(self) -> i64 {
        self.0.div_euclid(SECONDS_PER_HOUR)
    }

    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0 + days * SECONDS_PER_DAY)
    }

    /// The same day of the month `months` later, clamped to the month's end.
    pub fn plus_months(self, months: i64) -> Timestamp {
        let (y, m, d) = civil_from_days(self.day());
        let total = y * 12 + i64::from(m) - 1 + months;
        let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
        let nd = d.min(days_in_month(ny, nm));
        Timestamp(
            days_from_civil(ny, nm, nd) * SECONDS_PER_DAY + self.0.rem_euclid(SECONDS_PER_DAY),
        )
    }

    /// The first instant of this timestamp's calendar month (UTC).
    pub fn month_start(self) -> Timestamp {
        let (y, m, _) = civil_from_days(self.day());
        Timestamp::from_ymd(y, m, 1)
    }

    /// [start, end) of this timestamp's calendar month (UTC).
    pub fn month_bounds(self) -> (Timestamp, Timestamp) {
        let start = self.month_start();
        (start, start.plus_months(1))
    }

    pub fn date_string(self) -> String {
        let (y, m, d) = civil_from_days(self.day());
        format!("{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.day());
        let s = self.0.rem_euclid(SECONDS_PER_DAY);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("2024-09-18 22:00:00", "2024-09-18T22:00:00Z"),
            ("2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z"),
            ("2023-01-01T01:00:00+00:00", "2023-01-01T01:00:00Z"),
            ("2024-02-29", "2024-02-29T00:00:00Z"),
            ("2023-01-01T00:00:00.000Z", "2023-01-01T00:00:00Z"),
        ];
        for (i, o) in ok {
            assert_eq!(Timestamp::parse(i).unwrap().to_string(), o, "{i}");
        }
        for bad in [
            "",
            "2023-13-01",
            "2023-02-29",
            "2023-01-01T25:00:00Z",
            "2023-01-01T00:00:00+02:00",
            "yesterday",
            "2023-1-1",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Timestamp::parse("1970-01-02").unwrap().0, 86_400);
    }

    #[test]
    fn months_clamp_to_month_end() {
        let t = Timestamp::parse("2024-01-31").unwrap();
        assert_eq!(t.plus_months(1).date_string(), "2024-02-29");
        assert_eq!(t.plus_months(13).date_string(), "2025-02-28");
        assert_eq!(
            Timestamp::parse("2026-01-01")
                .unwrap()
                .plus_months(84)
                .date_string(),
            "2033-01-01"
        );
    }

    proptest! {
        #[test]
        fn civil_roundtrip(z in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
