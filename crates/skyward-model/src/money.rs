//! Exact money: integer micro-dollars.
//!
//! Prices in public catalogs have at most six decimals, so micro-dollars hold
//! them exactly. Sums are integer additions; a cost is rounded once, when a
//! rate is multiplied by a (possibly fractional) quantity.

use serde::{Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// US dollars as integer micro-dollars (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(i64);

const MICROS_PER_USD: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdParseError {
    #[error("empty amount")]
    Empty,
    #[error("'{0}' is not a decimal dollar amount (expected e.g. 12.5)")]
    NotDecimal(String),
    #[error("'{0}' is too large (limit: 9 trillion USD)")]
    TooLarge(String),
}

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub const fn from_micros(micros: i64) -> Usd {
        Usd(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole dollars, exactly.
    pub const fn from_dollars(dollars: i64) -> Usd {
        Usd(dollars * MICROS_PER_USD)
    }

    /// Rounds a float dollar amount to the nearest micro-dollar. Used only at
    /// the edge (user input given as YAML numbers) and for rounding a product
    /// once; never for running sums.
    pub fn from_f64_rounded(dollars: f64) -> Option<Usd> {
        if !dollars.is_finite() {
            return None;
        }
        let micros = (dollars * MICROS_PER_USD as f64).round();
        if micros.abs() > 9.0e18 {
            return None;
        }
        Some(Usd(micros as i64))
    }

    /// Dollars as a float, for solvers and display only.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_USD as f64
    }

    /// Parses a decimal string ("21.957642", "8", "0.5") exactly. Digits past
    /// the sixth decimal are rounded half away from zero.
    pub fn parse(text: &str) -> Result<Usd, UsdParseError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(UsdParseError::Empty);
        }
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(UsdParseError::NotDecimal(text.to_string()));
        }
        if int_part.len() > 13 {
            return Err(UsdParseError::TooLarge(text.to_string()));
        }
        let whole: i64 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| UsdParseError::NotDecimal(text.to_string()))?
        };
        let mut micros: i64 = 0;
        let frac = frac_part.as_bytes();
        for i in 0..6 {
            let d = frac.get(i).map(|b| i64::from(b - b'0')).unwrap_or(0);
            micros = micros * 10 + d;
        }
        if frac.get(6).is_some_and(|b| *b >= b'5') {
            micros += 1;
        }
        let total = whole * MICROS_PER_USD + micros;
        Ok(Usd(if negative { -total } else { total }))
    }

    /// `self × quantity`, rounded once to the nearest micro-dollar.
    /// `quantity` is e.g. node-hours, which may be fractional after scaling
    /// by accelerator speed.
    pub fn times(self, quantity: f64) -> Usd {
        let product = self.0 as f64 * quantity;
        Usd(product.round() as i64)
    }

    /// `self × n` exactly.
    pub fn times_int(self, n: i64) -> Usd {
        Usd(self.0.saturating_mul(n))
    }

    /// `self × (100 − pct) / 100`, rounded once.
    pub fn discounted_pct(self, pct: f64) -> Usd {
        self.times((100.0 - pct) / 100.0)
    }

    pub fn max(self, other: Usd) -> Usd {
        if self >= other {
            self
        } else {
            other
        }
    }

    pub fn min(self, other: Usd) -> Usd {
        if self <= other {
            self
        } else {
            other
        }
    }
}

/// `$1,234.57` from a signed number of cents (shared with the ledger's
/// pico-dollar amounts).
pub fn format_cents(cents_total: i128) -> String {
    let negative = cents_total < 0;
    let cents_abs = cents_total.unsigned_abs();
    let whole = (cents_abs / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!(
        "{}${}.{:02}",
        if negative { "-" } else { "" },
        grouped,
        cents_abs % 100
    )
}

impl fmt::Display for Usd {
    /// `$1,234.57`: cents, with thousands separators.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents_total = (self.0 as i128 + if self.0 >= 0 { 5_000 } else { -5_000 }) / 10_000;
        f.write_str(&format_cents(cents_total))
    }
}

impl Serialize for Usd {
    /// JSON carries dollars as a number (micro-dollar precision).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0 + rhs.0)
    }
}
impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        self.0 += rhs.0;
    }
}
impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd(self.0 - rhs.0)
    }
}
impl SubAssign for Usd {
    fn sub_assign(&mut self, rhs: Usd) {
        self.0 -= rhs.0;
    }
}
impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(-self.0)
    }
}
impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, i64)] = &[
            ("21.957642", 21_957_642),
            ("8", 8_000_000),
            ("0.5", 500_000),
            (".25", 250_000),
            ("55.04", 55_040_000),
            ("4.1917004", 4_191_700),
            ("4.1917005", 4_191_701),
            ("-1.5", -1_500_000),
        ];
        for (text, micros) in cases {
            assert_eq!(Usd::parse(text), Ok(Usd::from_micros(*micros)), "{text}");
        }
        for bad in ["", "abc", "1.2.3", "1e5", "--1", "."] {
            assert!(Usd::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn display_table() {
        let cases: &[(i64, &str)] = &[
            (0, "$0.00"),
            (1_234_567_000, "$1,234.57"),
            (999_994, "$1.00"),
            (5_000_000_000_000, "$5,000,000.00"),
            (-2_500_000, "-$2.50"),
        ];
        for (micros, text) in cases {
            assert_eq!(Usd::from_micros(*micros).to_string(), *text);
        }
    }

    #[test]
    fn seven_year_hourly_sum_is_exact() {
        // 61,320 hours at $98.32/h sums exactly to the cent.
        let rate = Usd::parse("98.32").unwrap();
        let total: Usd = (0..61_320).map(|_| rate).sum();
        assert_eq!(total, Usd::from_micros(98_320_000 * 61_320));
    }

    proptest! {
        #[test]
        fn parse_roundtrips_micros(m in -9_000_000_000_000i64..9_000_000_000_000i64) {
            let neg = m < 0;
            let a = m.unsigned_abs();
            let text = format!("{}{}.{:06}", if neg { "-" } else { "" }, a / 1_000_000, a % 1_000_000);
            prop_assert_eq!(Usd::parse(&text), Ok(Usd::from_micros(m)));
        }
    }
}
