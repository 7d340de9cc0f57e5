//! Skyward's own catalog file: one offering per line, CSV.
//!
//! `provider,region,sku,accelerator,accelerator_count,vcpus,memory_gib,
//! on_demand_usd_per_hour,spot_usd_per_hour,zones,source`

use skyward_model::{Offering, RegionKey, Usd};
use std::io::{Read, Write};

pub const HEADER: [&str; 11] = [
    "provider",
    "region",
    "sku",
    "accelerator",
    "accelerator_count",
    "vcpus",
    "memory_gib",
    "on_demand_usd_per_hour",
    "spot_usd_per_hour",
    "zones",
    "source",
];

/// Upper bound on offerings in one catalog file.
pub const OFFERINGS_MAX: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("{file}: not a Skyward catalog (header must be: {expected})")]
    Header { file: String, expected: String },
    #[error("{file}:{line}: column '{column}': {message}")]
    Field {
        file: String,
        line: u64,
        column: &'static str,
        message: String,
    },
    #[error("{file}: more than {OFFERINGS_MAX} offerings")]
    TooMany { file: String },
}

pub fn is_skyward_header(first_line: &str) -> bool {
    first_line.trim_end() == HEADER.join(",")
}

pub fn write_offerings<W: Write>(w: W, offerings: &[Offering]) -> Result<(), csv::Error> {
    let mut wr = csv::Writer::from_writer(w);
    wr.write_record(HEADER)?;
    let opt = |u: Option<Usd>| u.map(fmt_usd).unwrap_or_default();
    for o in offerings {
        wr.write_record([
            o.region.provider.as_str(),
            o.region.region.as_str(),
            &o.sku,
            &o.accelerator,
            &o.accelerator_count.to_string(),
            &trim_float(o.vcpus),
            &trim_float(o.memory_gib),
            &opt(o.on_demand_usd_per_hour),
            &opt(o.spot_usd_per_hour),
            &o.zones.to_string(),
            &o.source,
        ])?;
    }
    wr.flush()?;
    Ok(())
}

/// Exact decimal rendering of micro-dollars with trailing zeros trimmed.
pub fn fmt_usd(v: Usd) -> String {
    let m = v.micros();
    let s = format!("{}.{:06}", m / 1_000_000, (m % 1_000_000).abs());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn read_offerings<R: Read>(r: R, file: &str) -> Result<Vec<Offering>, FormatError> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(r);
    let headers = rdr.headers().map_err(|e| FormatError::Io {
        file: file.into(),
        message: e.to_string(),
    })?;
    if headers.iter().collect::<Vec<_>>() != HEADER {
        return Err(FormatError::Header {
            file: file.into(),
            expected: HEADER.join(","),
        });
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| FormatError::Io {
            file: file.into(),
            message: e.to_string(),
        })?;
        if out.len() >= OFFERINGS_MAX {
            return Err(FormatError::TooMany { file: file.into() });
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| rec.get(i).unwrap_or("").trim();
        let err = |column: &'static str, message: String| FormatError::Field {
            file: file.into(),
            line,
            column,
            message,
        };
        let nonempty = |i: usize, col: &'static str| -> Result<String, FormatError> {
            let v = field(i);
            if v.is_empty() {
                Err(err(col, "empty".into()))
            } else {
                Ok(v.to_string())
            }
        };
        let num = |i: usize, col: &'static str| -> Result<f64, FormatError> {
            let v = field(i);
            if v.is_empty() {
                return Ok(0.0);
            }
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| err(col, format!("'{v}' is not a non-negative number")))
        };
        let price = |i: usize, col: &'static str| -> Result<Option<Usd>, FormatError> {
            let v = field(i);
            if v.is_empty() {
                return Ok(None);
            }
            let p = Usd::parse(v).map_err(|e| err(col, e.to_string()))?;
            if p < Usd::ZERO {
                return Err(err(col, "negative price".into()));
            }
            Ok(Some(p))
        };
        let count: u32 = field(4)
            .parse()
            .ok()
            .filter(|c| (1..=1024).contains(c))
            .ok_or_else(|| {
                err(
                    "accelerator_count",
                    format!("'{}' is not a whole number from 1 to 1024", field(4)),
                )
            })?;
        let on_demand = price(7, "on_demand_usd_per_hour")?;
        let spot = price(8, "spot_usd_per_hour")?;
        if on_demand.is_none() && spot.is_none() {
            return Err(err(
                "on_demand_usd_per_hour",
                "an offering needs an on-demand or a spot price".into(),
            ));
        }
        out.push(Offering {
            region: RegionKey::new(&nonempty(0, "provider")?, &nonempty(1, "region")?),
            sku: nonempty(2, "sku")?,
            accelerator: nonempty(3, "accelerator")?,
            accelerator_count: count,
            vcpus: num(5, "vcpus")?,
            memory_gib: num(6, "memory_gib")?,
            on_demand_usd_per_hour: on_demand,
            spot_usd_per_hour: spot,
            zones: field(9).parse().unwrap_or(1),
            source: field(10).to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let o = Offering {
            region: RegionKey::new("aws", "us-east-1"),
            sku: "p5.48xlarge".into(),
            accelerator: "H100".into(),
            accelerator_count: 8,
            vcpus: 192.0,
            memory_gib: 2048.0,
            on_demand_usd_per_hour: Some(Usd::parse("55.04").unwrap()),
            spot_usd_per_hour: None,
            zones: 3,
            source: "test".into(),
        };
        let mut buf = Vec::new();
        write_offerings(&mut buf, std::slice::from_ref(&o)).unwrap();
        let back = read_offerings(buf.as_slice(), "x").unwrap();
        assert_eq!(back, vec![o]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = format!(
            "{}\naws,us-east-1,p5,H100,8,1,1,abc,,1,s\n",
            HEADER.join(",")
        );
        let e = read_offerings(text.as_bytes(), "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.csv:2") && e.contains("on_demand_usd_per_hour"),
            "{e}"
        );
        let text = format!("{}\naws,us-east-1,p5,H100,0,1,1,1,,1,s\n", HEADER.join(","));
        assert!(read_offerings(text.as_bytes(), "c.csv")
            .unwrap_err()
            .to_string()
            .contains("accelerator_count"));
    }
}
