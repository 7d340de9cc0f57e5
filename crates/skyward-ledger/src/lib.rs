//! Skyward's commitment ledger. Pure: CSV readers in, values out; the
//! database lives in `skyward-store`.
//!
//! * [`amount`]: exact pico-dollar amounts (FOCUS has 11-decimal rows).
//! * [`time`]: UTC timestamps without a time library.
//! * [`focus`]: FOCUS 1.0–1.3 CSV parsing with row-level validation, and
//!   the specification's commitment-discount invariants.

pub mod aggregate;
pub mod amount;
pub mod focus;
pub mod time;

pub use amount::Amount;
pub use time::Timestamp;
