pub mod bench;
pub mod bench_submit;
pub mod catalog;
pub mod client;
pub mod gateway;
pub mod ledger;
pub mod plan;
pub mod server;
