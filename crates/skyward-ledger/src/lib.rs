//! Skyward's commitment ledger. Pure: CSV readers in, values out; the
//! database lives in `skyward-store`.
//!
//! * [`amount`]: exact pico-dollar amounts (FOCUS has 11-decimal rows).
//! * [`time`]: UTC timestamps without a time library.
//! * [`focus`]: FOCUS 1.0–1.3 CSV parsing with row-level validation, and
//!   the specification's commitment-discount invariants.
//! * [`aggregate`]: charges folded into daily and hourly buckets.
//! * [`contracts`]: spend, hourly and capacity commitments.
//! * [`status`]: burn-down, forecasts, utilisation and coverage at a date.

pub mod aggregate;
pub mod amount;
pub mod analyze;
pub mod backtest;
pub mod breakdown;
pub mod contracts;
pub mod export;
pub mod focus;
pub mod generate;
pub mod inventory;
pub mod live;
pub mod options;
pub mod planning;
pub mod projection;
pub mod recommend;
pub mod runs;
pub mod status;
pub mod time;

pub use amount::Amount;
pub use time::Timestamp;
