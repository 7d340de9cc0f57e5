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
//!
//! Errors are one enum, [`AppError`], whose kinds map to exit codes and
//! HTTP statuses at each edge.

pub mod contracts;
pub mod ledger;

use skyward_spec::SpecError;
use skyward_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is wrong (file, field, flag): exit 2 / HTTP 4xx.
    #[error("{0}")]
    Input(String),
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
    /// Errors the user can fix by changing the input.
    pub fn is_input(&self) -> bool {
        match self {
            AppError::Input(_) | AppError::NotFound(_) | AppError::Spec(_) => true,
            AppError::Store(e) => e.is_input(),
            AppError::Io(_) => false,
        }
    }
}
