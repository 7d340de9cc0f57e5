pub mod bench;
pub mod catalog;
pub mod plan;
