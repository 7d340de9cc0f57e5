//! Exact ledger amounts: integer pico-dollars in an `i128`.
//!
//! FOCUS rows carry up to 11 decimals ($0.00000080000 per request), so
//! micro-dollars would round millions of small rows; pico-dollars hold them
//! exactly, and an `i128` holds 1.7e26 dollars. Sums are integer additions.

use serde::{Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};

pub const PICOS_PER_USD: i128 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub i128);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// Parses a decimal string exactly; digits past the 12th decimal are
    /// rounded half away from zero. Accepts a leading sign and an exponent
    /// (`1.5E-7`), which some exporters write.
    pub fn parse(text: &str) -> Result<Amount, String> {
        let t = text.trim();
        let bad = || format!("'{t}' is not a decimal amount");
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
            None => (t, 0),
        };
        if !(-30..=30).contains(&exp) {
            return Err(bad());
        }
        let (neg, digits) = match mantissa.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (ip, fp) = digits.split_once('.').unwrap_or((digits, ""));
        if (ip.is_empty() && fp.is_empty())
            || !ip.bytes().all(|b| b.is_ascii_digit())
            || !fp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // All digits as one integer, with the decimal point moved by `exp`.
        let mut all = String::with_capacity(ip.len() + fp.len());
        all.push_str(ip);
        all.push_str(fp);
        let all = all.trim_start_matches('0');
        if all.len() > 36 {
            return Err(format!("'{t}' has too many digits"));
        }
        let scale = fp.len() as i32 - exp; // value = all × 10^-scale
        let n: i128 = if all.is_empty() {
            0
        } else {
            all.parse().map_err(|_| bad())?
        };
        let shift = 12 - scale; // pico = n × 10^shift
        let picos = if shift >= 0 {
            n.checked_mul(10i128.checked_pow(shift as u32).ok_or_else(bad)?)
                .ok_or_else(|| format!("'{t}' is too large"))?
        } else {
            let div = 10i128.checked_pow((-shift) as u32).ok_or_else(bad)?;
            let q = n / div;
            if (n % div) * 2 >= div {
                q + 1
            } else {
                q
            }
        };
        Ok(Amount(if neg { -picos } else { picos }))
    }

    pub fn from_usd_f64(v: f64) -> Amount {
        Amount((v * PICOS_PER_USD as f64).round() as i128)
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / PICOS_PER_USD as f64
    }

    /// Rounded to the cent, as an integer number of cents.
    pub fn cents(self) -> i128 {
        let c = PICOS_PER_USD / 100;
        let q = self.0 / c;
        let r = self.0 % c;
        if r.abs() * 2 >= c {
            q + r.signum()
        } else {
            q
        }
    }

    /// Nano-dollars, for storage in 64-bit integer columns (rounded).
    pub fn nanos(self) -> i64 {
        let q = self.0 / 1_000;
        let r = self.0 % 1_000;
        let q = if r.abs() * 2 >= 1_000 {
            q + r.signum()
        } else {
            q
        };
        q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    pub fn from_nanos(n: i64) -> Amount {
        Amount(i128::from(n) * 1_000)
    }

    pub fn max(self, o: Amount) -> Amount {
        if self >= o {
            self
        } else {
            o
        }
    }

    pub fn min(self, o: Amount) -> Amount {
        if self <= o {
            self
        } else {
            o
        }
    }

    /// Exact decimal text (`12.5`, `0.0000008`), for writing CSV.
    pub fn decimal(self) -> String {
        let neg = self.0 < 0;
        let a = self.0.unsigned_abs();
        let per = PICOS_PER_USD as u128;
        let frac = format!("{:012}", a % per);
        let frac = frac.trim_end_matches('0');
        let sign = if neg { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{}", a / per)
        } else {
            format!("{sign}{}.{frac}", a / per)
        }
    }

    pub fn abs(self) -> Amount {
        Amount(self.0.abs())
    }
}

impl fmt::Display for Amount {
    /// `$1,234.57`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&skyward_model::money::format_cents(self.cents()))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Dollars rounded to the cent: exact in JSON's f64 up to ~$90 trillion.
        s.serialize_f64(self.cents() as f64 / 100.0)
    }
}

/// From its JSON form (dollars to the cent), for clients that read what a
/// server serialised.
impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let dollars = f64::deserialize(d)?;
        if !dollars.is_finite() {
            return Err(serde::de::Error::custom(
                "an amount must be a finite number",
            ));
        }
        Ok(Amount((dollars * 100.0).round() as i128 * 10_000_000_000))
    }
}

impl Add for Amount {
    type Output = Amount;
    fn add(self, o: Amount) -> Amount {
        Amount(self.0 + o.0)
    }
}
impl AddAssign for Amount {
    fn add_assign(&mut self, o: Amount) {
        self.0 += o.0;
    }
}
impl Sub for Amount {
    type Output = Amount;
    fn sub(self, o: Amount) -> Amount {
        Amount(self.0 - o.0)
    }
}
impl Neg for Amount {
    type Output = Amount;
    fn neg(self) -> Amount {
        Amount(-self.0)
    }
}
impl Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(it: I) -> Amount {
        it.fold(Amount::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, i128)] = &[
            ("0.00000080000", 800_000),
            ("0.00001605990", 16_059_900),
            ("8760.00", 8_760 * PICOS_PER_USD),
            ("-1.5", -1_500_000_000_000),
            ("1.5E-7", 150_000),
            ("2e3", 2_000 * PICOS_PER_USD),
            ("0.0000000000005", 1),
            ("0.0000000000004", 0),
        ];
        for (t, p) in cases {
            assert_eq!(Amount::parse(t), Ok(Amount(*p)), "{t}");
        }
        for bad in ["", "x", "1.2.3", "--1", "1e999", "NaN"] {
            assert!(Amount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimal_roundtrip() {
        for t in ["12.5", "0.0000008", "-3", "38000000000.000000000001"] {
            assert_eq!(Amount::parse(t).unwrap().decimal(), t);
        }
    }

    #[test]
    fn seven_year_hourly_ledger_is_exact_to_the_cent() {
        // 61,320 hours × 12 contracts at $1,234.567891234/h.
        let rate = Amount::parse("1234.567891234").unwrap();
        let total: Amount = (0..61_320 * 12).map(|_| rate).sum();
        assert_eq!(total.0, 1_234_567_891_234_000 * 61_320 * 12);
        assert_eq!(total.to_string(), "$908,444,437.09");
    }

    proptest! {
        #[test]
        fn parse_display_roundtrip_cents(c in -10_000_000_000_000i64..10_000_000_000_000) {
            let text = format!("{}{}.{:02}", if c < 0 { "-" } else { "" }, c.unsigned_abs() / 100, c.unsigned_abs() % 100);
            let a = Amount::parse(&text).unwrap();
            prop_assert_eq!(a.cents(), i128::from(c));
        }
    }
}
