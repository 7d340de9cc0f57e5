pub mod bench;
pub mod catalog;
pub mod ledger;
pub mod plan;
