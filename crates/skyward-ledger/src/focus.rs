//! FOCUS billing rows (FinOps Open Cost and Usage Specification 1.0–1.3).
//!
//! Columns are found by name. Provider comes from `ServiceProviderName`
//! (1.3), else `ProviderName` (1.0–1.2), else the caller's default (the
//! spec's own examples carry none). Nulls may be written as an empty field,
//! `NULL` or `null`. Every row is validated; errors name the file, the line
//! and the column, and a file with errors imports nothing.

use crate::amount::Amount;
use crate::time::Timestamp;
use serde::Serialize;
use std::io::Read;

/// Upper bound on rows in one file.
pub const ROWS_MAX: usize = 50_000_000;
/// Errors listed before giving up on a file.
pub const ERRORS_MAX: usize = 20;
/// Longest quoted field accepted: a quote left open runs on to the end of
/// the file, and is reported once it passes this.
pub const QUOTED_FIELD_BYTES_MAX: u64 = 1 << 20;
/// Longest Tags value accepted on a row.
pub const TAGS_BYTES_MAX: usize = 4_096;
/// Longest line (outside quotes) accepted.
pub const LINE_BYTES_MAX: u64 = 4 << 20;

/// A warning about a row that was imported (the value is legal FOCUS but
/// unusual enough to be a mistake).
pub fn row_warning(c: &Charge) -> Option<String> {
    (c.category == ChargeCategory::Usage && c.billed_cost < Amount::ZERO).then(|| {
        format!(
            "line {}: negative BilledCost {} on a Usage row (refunds are usually Credit or Adjustment rows)",
            c.line, c.billed_cost
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ChargeCategory {
    Usage,
    Purchase,
    Tax,
    Credit,
    Adjustment,
}

impl ChargeCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeCategory::Usage => "Usage",
            ChargeCategory::Purchase => "Purchase",
            ChargeCategory::Tax => "Tax",
            ChargeCategory::Credit => "Credit",
            ChargeCategory::Adjustment => "Adjustment",
        }
    }
    pub fn parse(s: &str) -> Option<ChargeCategory> {
        [
            ChargeCategory::Usage,
            ChargeCategory::Purchase,
            ChargeCategory::Tax,
            ChargeCategory::Credit,
            ChargeCategory::Adjustment,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CommitmentStatus {
    Used,
    Unused,
}

/// One charge row, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charge {
    pub line: u64,
    pub provider: String,
    pub billing_account: String,
    pub billing_period_start: Option<Timestamp>,
    pub charge_period_start: Timestamp,
    pub charge_period_end: Timestamp,
    pub category: ChargeCategory,
    pub frequency: Option<String>,
    pub pricing_category: Option<String>,
    pub region: Option<String>,
    pub service: Option<String>,
    pub sku: Option<String>,
    pub resource_id: Option<String>,
    pub billed_cost: Amount,
    pub effective_cost: Amount,
    pub list_cost: Option<Amount>,
    pub contracted_cost: Option<Amount>,
    pub list_unit_price: Option<Amount>,
    pub pricing_quantity: Option<Amount>,
    pub consumed_quantity: Option<Amount>,
    pub commitment_id: Option<String>,
    pub commitment_status: Option<CommitmentStatus>,
    pub commitment_category: Option<String>,
    /// FOCUS Tags, as a canonical JSON object (keys sorted), if any.
    pub tags: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    /// The bytes are not a CSV file (bad UTF-8, an unterminated quote, a
    /// line without end).
    #[error("{file}: {message}")]
    Format { file: String, message: String },
    #[error("{file}: missing required FOCUS column '{column}'")]
    MissingColumn { file: String, column: String },
    #[error("{file}: no provider column (ServiceProviderName or ProviderName); pass --provider")]
    NoProvider { file: String },
    #[error("{file}: {} row error(s):\n{}", .errors.len(), .errors.join("\n"))]
    Rows { file: String, errors: Vec<String> },
    #[error("{file}: more than {ROWS_MAX} rows; split the file")]
    TooManyRows { file: String },
}

struct Cols {
    provider: Option<usize>,
    account: Option<usize>,
    billing_period_start: Option<usize>,
    start: usize,
    end: usize,
    category: usize,
    frequency: Option<usize>,
    pricing_category: Option<usize>,
    region: Option<usize>,
    service: Option<usize>,
    sku: Option<usize>,
    resource: Option<usize>,
    billed: usize,
    effective: usize,
    list: Option<usize>,
    contracted: Option<usize>,
    list_unit_price: Option<usize>,
    pricing_quantity: Option<usize>,
    consumed_quantity: Option<usize>,
    commitment_id: Option<usize>,
    commitment_status: Option<usize>,
    commitment_category: Option<usize>,
    tags: Option<usize>,
    currency: Option<usize>,
}

fn is_null(s: &str) -> bool {
    s.is_empty() || s.eq_ignore_ascii_case("null")
}

/// Normalises the stream for the csv reader: drops carriage returns and
/// blank lines outside quoted fields, remembering where blank lines were
/// (as byte offsets in the filtered stream). The csv crate's line numbers
/// drift after blank lines and CRLF endings; on clean LF input they are
/// right, and errors must name the file's real line.
///
/// It also bounds memory whatever the input: a quoted field longer than
/// [`QUOTED_FIELD_BYTES_MAX`] (an unterminated quote) or a line longer than
/// [`LINE_BYTES_MAX`] ends the read with an `InvalidData` error naming
/// the line, before the csv reader buffers it.
struct BlankLines<R> {
    inner: R,
    in_quotes: bool,
    at_line_start: bool,
    out_offset: u64,
    removed_at: std::rc::Rc<std::cell::RefCell<Vec<u64>>>,
    buf: Vec<u8>,
    /// 1-based line of the input being read.
    line: u64,
    /// Line where the open quote started, bytes since it opened.
    quote_line: u64,
    quoted_bytes: u64,
    line_bytes: u64,
    /// The last byte passed on (None at the start).
    prev: Option<u8>,
    /// The previous byte was a `"` that closed a quoted field, unless this
    /// one is `"` too.
    quote_pending: bool,
}

fn blank_lines<R>(
    inner: R,
    removed_at: std::rc::Rc<std::cell::RefCell<Vec<u64>>>,
) -> BlankLines<R> {
    BlankLines {
        inner,
        in_quotes: false,
        at_line_start: true,
        out_offset: 0,
        removed_at,
        buf: Vec::new(),
        line: 1,
        quote_line: 0,
        quoted_bytes: 0,
        line_bytes: 0,
        prev: None,
        quote_pending: false,
    }
}

impl<R> BlankLines<R> {
    fn too_long(&self) -> std::io::Error {
        if self.in_quotes {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "unterminated quote: the quoted field opened at line {} runs on for more than {} MiB",
                    self.quote_line,
                    QUOTED_FIELD_BYTES_MAX >> 20
                ),
            )
        } else {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} MiB: not a FOCUS CSV file",
                    self.line,
                    LINE_BYTES_MAX >> 20
                ),
            )
        }
    }

    fn over_limit(&self) -> bool {
        if self.in_quotes {
            self.quoted_bytes > QUOTED_FIELD_BYTES_MAX
        } else {
            self.line_bytes > LINE_BYTES_MAX
        }
    }
}

impl<R: Read> Read for BlankLines<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            self.buf.resize(out.len().max(1), 0);
            let n = self.inner.read(&mut self.buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut k = 0;
            let mut i = 0;
            // Ordinary bytes are copied in runs; only newlines, carriage
            // returns and quotes are looked at one by one.
            while i < n {
                let j = memchr::memchr3(b'\n', b'\r', b'"', &self.buf[i..n]).map_or(n, |x| i + x);
                let run = j - i;
                if run > 0 {
                    self.line_bytes += run as u64;
                    if self.in_quotes {
                        self.quoted_bytes += run as u64;
                    }
                    if self.over_limit() {
                        return Err(self.too_long());
                    }
                    out[k..k + run].copy_from_slice(&self.buf[i..j]);
                    k += run;
                    self.out_offset += run as u64;
                    self.prev = Some(self.buf[j - 1]);
                    self.at_line_start = false;
                    self.quote_pending = false;
                }
                if j == n {
                    break;
                }
                let b = self.buf[j];
                i = j + 1;
                self.line_bytes += 1;
                if b == b'\n' {
                    self.line += 1;
                    self.line_bytes = 0;
                }
                if self.in_quotes {
                    self.quoted_bytes += 1;
                }
                if self.over_limit() {
                    return Err(self.too_long());
                }
                if !self.in_quotes && b == b'\r' {
                    continue;
                }
                if !self.in_quotes && self.at_line_start && b == b'\n' {
                    self.removed_at.borrow_mut().push(self.out_offset);
                    continue;
                }
                // A quote opens a quoted field only at the start of a field
                // (elsewhere the csv reader keeps it as a character); in a
                // quoted field, `""` is an escaped quote and a lone `"`
                // closes it.
                if b == b'"' {
                    let field_start = matches!(self.prev, None | Some(b',') | Some(b'\n'));
                    if self.quote_pending {
                        self.quote_pending = false;
                        self.in_quotes = true;
                    } else if self.in_quotes {
                        self.in_quotes = false;
                        self.quote_pending = true;
                    } else if field_start {
                        self.in_quotes = true;
                        self.quote_line = self.line;
                        self.quoted_bytes = 0;
                    }
                } else {
                    self.quote_pending = false;
                }
                self.at_line_start = b == b'\n' && !self.in_quotes;
                out[k] = b;
                k += 1;
                self.out_offset += 1;
                self.prev = Some(b);
            }
            if k > 0 {
                return Ok(k);
            }
        }
    }
}

/// Parses a whole FOCUS CSV into memory (small files and tests; imports
/// stream with [`read`]).
pub fn parse<R: Read>(
    reader: R,
    file: &str,
    default_provider: Option<&str>,
) -> Result<Vec<Charge>, FocusError> {
    let mut out = Vec::new();
    read(reader, file, default_provider, |c| out.push(c))?;
    Ok(out)
}

/// Streams a FOCUS CSV: `each` sees every valid row in order. Returns the
/// number of rows. Any invalid row fails the whole file (after listing up
/// to [`ERRORS_MAX`] errors), so the caller must not commit what `each`
/// saw until this returns Ok. `default_provider` is used when the file has
/// no provider column.
pub fn read<R: Read, F: FnMut(Charge)>(
    reader: R,
    file: &str,
    default_provider: Option<&str>,
    mut each: F,
) -> Result<usize, FocusError> {
    let removed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let filtered = blank_lines(reader, removed.clone());
    // The real line of a record: its line in the filtered stream plus the
    // blank lines dropped before its first byte.
    let real_line = |pos: Option<&csv::Position>, fallback: u64| -> u64 {
        match pos {
            Some(p) => {
                p.line() + removed.borrow().iter().filter(|&&b| b <= p.byte()).count() as u64
            }
            None => fallback,
        }
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(filtered);
    let headers = rdr.headers().map_err(|e| format_or_io(file, e))?.clone();
    let pos = |name: &str| {
        headers.iter().position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(name)
        })
    };
    let need = |name: &str| {
        pos(name).ok_or_else(|| FocusError::MissingColumn {
            file: file.into(),
            column: name.into(),
        })
    };
    let cols = Cols {
        provider: pos("ServiceProviderName").or_else(|| pos("ProviderName")),
        account: pos("BillingAccountId"),
        billing_period_start: pos("BillingPeriodStart"),
        start: need("ChargePeriodStart")?,
        end: need("ChargePeriodEnd")?,
        category: need("ChargeCategory")?,
        frequency: pos("ChargeFrequency"),
        pricing_category: pos("PricingCategory"),
        region: pos("RegionId"),
        service: pos("ServiceName"),
        sku: pos("SkuId"),
        resource: pos("ResourceId"),
        billed: need("BilledCost")?,
        effective: need("EffectiveCost")?,
        list: pos("ListCost"),
        contracted: pos("ContractedCost"),
        list_unit_price: pos("ListUnitPrice"),
        pricing_quantity: pos("PricingQuantity"),
        consumed_quantity: pos("ConsumedQuantity"),
        commitment_id: pos("CommitmentDiscountId"),
        commitment_status: pos("CommitmentDiscountStatus"),
        commitment_category: pos("CommitmentDiscountCategory"),
        tags: pos("Tags"),
        currency: pos("BillingCurrency"),
    };
    if cols.provider.is_none() && default_provider.is_none() {
        return Err(FocusError::NoProvider { file: file.into() });
    }
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    let mut count = 0usize;
    let mut errors = Vec::new();
    let mut tags_cache = TagsCache::default();
    for (i, rec) in rdr.records().enumerate() {
        if i >= ROWS_MAX {
            return Err(FocusError::TooManyRows { file: file.into() });
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                return Err(format_or_io(file, e));
            }
            Err(e) => {
                let line = real_line(e.position(), 0);
                errors.push(format!("{file}:{line}: {e}"));
                if errors.len() >= ERRORS_MAX {
                    break;
                }
                continue;
            }
        };
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let line = real_line(rec.position(), i as u64 + 2);
        match row(&rec, &cols, &names, default_provider, &mut tags_cache) {
            Ok(c) => {
                count += 1;
                if errors.is_empty() {
                    each(Charge { line, ..c });
                }
            }
            Err((col, msg)) => {
                errors.push(format!("{file}:{line}: {col}: {msg}"));
                if errors.len() >= ERRORS_MAX {
                    errors.push(format!("{file}: stopped after {ERRORS_MAX} errors"));
                    break;
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(FocusError::Rows {
            file: file.into(),
            errors,
        });
    }
    Ok(count)
}

/// A csv error: the input's own fault (bad bytes, an unterminated quote)
/// is `Format`; a failing read is `Io`.
fn format_or_io(file: &str, e: csv::Error) -> FocusError {
    let message = match e.kind() {
        csv::ErrorKind::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => {
            return FocusError::Io {
                file: file.into(),
                message: e.to_string(),
            }
        }
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::Utf8 { .. } => {
            "not UTF-8 text: a FOCUS export is a UTF-8 CSV file".to_string()
        }
        _ => e.to_string(),
    };
    FocusError::Format {
        file: file.into(),
        message,
    }
}

type RowError = (String, String);

/// Canonical Tags of recent raw values: exports repeat a few tag sets on
/// millions of rows, so each is parsed once (bounded: cleared when full).
type TagsCache = std::collections::HashMap<
    String,
    Option<String>,
    std::hash::BuildHasherDefault<crate::aggregate::FastHasher>,
>;
const TAGS_CACHE_MAX: usize = 4_096;

fn canonical_tags(t: &str, cache: &mut TagsCache) -> Result<Option<String>, RowError> {
    if let Some(v) = cache.get(t) {
        return Ok(v.clone());
    }
    if t.len() > TAGS_BYTES_MAX {
        return Err(("Tags".into(), format!("longer than {TAGS_BYTES_MAX} bytes")));
    }
    let m: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(t)
        .map_err(|e| {
            (
                "Tags".to_string(),
                format!("not a JSON object of tags ({e})"),
            )
        })?;
    let v = if m.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&m).unwrap_or_default())
    };
    if cache.len() >= TAGS_CACHE_MAX {
        cache.clear();
    }
    cache.insert(t.to_string(), v.clone());
    Ok(v)
}

fn row(
    rec: &csv::StringRecord,
    c: &Cols,
    names: &[String],
    default_provider: Option<&str>,
    tags_cache: &mut TagsCache,
) -> Result<Charge, RowError> {
    let get = |i: usize| rec.get(i).unwrap_or("").trim();
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();
    let opt = |i: Option<usize>| i.map(get).filter(|v| !is_null(v)).map(str::to_string);
    let amount = |i: usize| -> Result<Amount, RowError> {
        let v = get(i);
        if is_null(v) {
            return Err((name(i), "required, but empty".into()));
        }
        Amount::parse(v).map_err(|m| (name(i), m))
    };
    let opt_amount = |i: Option<usize>| -> Result<Option<Amount>, RowError> {
        match i {
            Some(i) if !is_null(get(i)) => {
                Amount::parse(get(i)).map(Some).map_err(|m| (name(i), m))
            }
            _ => Ok(None),
        }
    };
    let time = |i: usize| Timestamp::parse(get(i)).map_err(|m| (name(i), m));
    if let Some(cur) = opt(c.currency) {
        if !cur.eq_ignore_ascii_case("USD") {
            return Err((
                "BillingCurrency".into(),
                format!("'{cur}': only USD is supported (convert before import)"),
            ));
        }
    }
    let start = time(c.start)?;
    let end = time(c.end)?;
    if end < start {
        return Err((name(c.end), "ends before ChargePeriodStart".into()));
    }
    let category = ChargeCategory::parse(get(c.category)).ok_or_else(|| {
        (
            name(c.category),
            format!(
                "'{}' is not a ChargeCategory (Usage, Purchase, Tax, Credit, Adjustment)",
                get(c.category)
            ),
        )
    })?;
    let provider = match opt(c.provider) {
        Some(p) => p,
        None => default_provider.map(str::to_string).ok_or_else(|| {
            (
                "ProviderName".to_string(),
                "required, but empty".to_string(),
            )
        })?,
    };
    let commitment_status = match opt(c.commitment_status) {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("used") => Some(CommitmentStatus::Used),
        Some(s) if s.eq_ignore_ascii_case("unused") => Some(CommitmentStatus::Unused),
        Some(s) => {
            return Err((
                "CommitmentDiscountStatus".into(),
                format!("'{s}' is not Used or Unused"),
            ))
        }
    };
    let billing_period_start = match c.billing_period_start {
        Some(i) if !is_null(get(i)) => Some(time(i)?),
        _ => None,
    };
    let frequency = opt(c.frequency);
    let one_time = frequency
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("One-Time"));
    let max_s = crate::aggregate::SPREAD_DAYS_MAX * crate::time::SECONDS_PER_DAY;
    if !one_time && end.0 - start.0 > max_s {
        return Err((
            name(c.end),
            format!(
                "the charge period is longer than {} days; charges are spread evenly over their period, so split it (or mark a one-time charge ChargeFrequency One-Time)",
                crate::aggregate::SPREAD_DAYS_MAX
            ),
        ));
    }
    let tags = match c.tags.map(get).filter(|v| !is_null(v)) {
        None => None,
        Some(t) => canonical_tags(t, tags_cache)?,
    };
    Ok(Charge {
        line: 0,
        tags,
        provider,
        billing_account: opt(c.account).unwrap_or_default(),
        billing_period_start,
        charge_period_start: start,
        charge_period_end: end,
        category,
        frequency,
        pricing_category: opt(c.pricing_category),
        region: opt(c.region),
        service: opt(c.service),
        sku: opt(c.sku),
        resource_id: opt(c.resource),
        billed_cost: amount(c.billed)?,
        effective_cost: amount(c.effective)?,
        list_cost: opt_amount(c.list)?,
        contracted_cost: opt_amount(c.contracted)?,
        list_unit_price: opt_amount(c.list_unit_price)?,
        pricing_quantity: opt_amount(c.pricing_quantity)?,
        consumed_quantity: opt_amount(c.consumed_quantity)?,
        commitment_id: opt(c.commitment_id),
        commitment_status,
        commitment_category: opt(c.commitment_category),
    })
}

/// FOCUS commitment-discount invariants for one CommitmentDiscountId.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CommitmentCheck {
    pub commitment_id: String,
    /// Σ BilledCost of Purchase rows for the commitment.
    pub purchase_billed: Amount,
    /// Σ EffectiveCost of Usage rows that consumed it (Used + Unused).
    pub usage_effective: Amount,
    pub used_effective: Amount,
    pub unused_effective: Amount,
    /// Utilisation: used / (used + unused), in [0, 1].
    pub utilisation: Option<f64>,
    /// Both sides present and equal (a file may hold only one side).
    pub balanced: Option<bool>,
}

/// Per commitment: Σ EffectiveCost of usage = Σ BilledCost of purchases
/// = Σ Used + Σ Unused (FOCUS "Commitment discount" examples).
pub fn commitment_checks(charges: &[Charge]) -> Vec<CommitmentCheck> {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<&str, (Amount, Amount, Amount, bool)> = BTreeMap::new();
    for c in charges {
        let Some(id) = c.commitment_id.as_deref() else {
            continue;
        };
        let e = by
            .entry(id)
            .or_insert((Amount::ZERO, Amount::ZERO, Amount::ZERO, false));
        match (c.category, c.commitment_status) {
            (ChargeCategory::Purchase, _) => {
                e.0 += c.billed_cost;
                e.3 = true;
            }
            (ChargeCategory::Usage, Some(CommitmentStatus::Used)) => e.1 += c.effective_cost,
            (ChargeCategory::Usage, Some(CommitmentStatus::Unused)) => e.2 += c.effective_cost,
            _ => {}
        }
    }
    by.into_iter()
        .map(|(id, (purchase, used, unused, has_purchase))| {
            let usage = used + unused;
            CommitmentCheck {
                commitment_id: id.to_string(),
                purchase_billed: purchase,
                usage_effective: usage,
                used_effective: used,
                unused_effective: unused,
                utilisation: (usage > Amount::ZERO).then(|| used.as_f64() / usage.as_f64()),
                balanced: (has_purchase && usage > Amount::ZERO).then_some(purchase == usage),
            }
        })
        .collect()
}

/// Rows where ListCost ≠ ListUnitPrice × PricingQuantity beyond the
/// precision the file itself shows (half a unit of its last printed
/// decimal, with a floor of a pico-dollar).
pub fn list_cost_mismatches(charges: &[Charge]) -> Vec<u64> {
    charges
        .iter()
        .filter_map(|c| {
            let (lc, lup, pq) = (c.list_cost?, c.list_unit_price?, c.pricing_quantity?);
            let product = lup.0.checked_mul(pq.0)? / crate::amount::PICOS_PER_USD;
            let tolerance = (lc.0.abs() / 1_000_000).max(1_000_000);
            ((product - lc.0).abs() > tolerance).then_some(c.line)
        })
        .collect()
}
