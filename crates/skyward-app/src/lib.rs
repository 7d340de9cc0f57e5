//! Skyward's use cases over its stores. Each is a function the CLI (on a
//! local file, or the embedded database of `skyward up`) and the HTTP API
//! (on the control plane's database) both call, so they answer the same
//! question with the same code; the callers only parse arguments and
//! render.
//!
//! - [`ledger`]: import a FOCUS file (hash, fold, store), the ledger's
//!   status at a date.
//! - [`contracts`]: contracts as validated, versioned objects (apply,
//!   current, history, one contract's changes).
//! - [`analyze`]: a spend commitment's headline against its effective
//!   economics (owned, or what if).
//! - [`recommend`]: how much to commit (hourly or spend), payment options
//!   and laddering by NPV, and the backtest of the methods.
//! - [`breakdown`]: showback by any dimension; the inventory of
//!   commitments by end date.
//! - [`report`]: the ledger's HTML page (built from [`html`]'s charts and
//!   tables).
//!
//! A question's parameters are one struct ([`query`]): the CLI fills it
//! from flags, the API reads it from the query string, and `--server`
//! sends it over.
//!
//! Errors are one enum, [`AppError`], whose kinds map to exit codes and
//! HTTP statuses at each edge.

pub mod analyze;
pub mod breakdown;
pub mod catalog_fetch;
pub mod contracts;
pub mod gateway_view;
pub mod html;
pub mod ledger;
pub mod profiles;
pub mod query;
pub mod recommend;
pub mod report;
pub mod sim_report;

use skyward_spec::SpecError;
use skyward_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is wrong (file, field, flag): exit 2 / HTTP 4xx.
    #[error("{0}")]
    Input(String),
    /// One parameter of a question is wrong: each edge names it its own
    /// way (`--discount-pct`, `discount_pct`).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// What was asked for does not exist: exit 2 / HTTP 404.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

impl AppError {
    pub fn field(field: &str, message: &str) -> AppError {
        AppError::Field {
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    /// Errors the user can fix by changing the input.
    pub fn is_input(&self) -> bool {
        match self {
            AppError::Input(_)
            | AppError::Field { .. }
            | AppError::NotFound(_)
            | AppError::Spec(_) => true,
            AppError::Store(e) => e.is_input(),
            AppError::Io(_) => false,
        }
    }
}
