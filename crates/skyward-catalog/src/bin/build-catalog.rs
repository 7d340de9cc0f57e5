//! Regenerates the built-in catalog files from the public source rows.
//! Usage: build-catalog SHARED_DATA_DIR OUT_DIR

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(src), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: build-catalog SHARED_DATA_DIR OUT_DIR   (e.g. ../shared/data crates/skyward-catalog/data)");
        return ExitCode::from(2);
    };
    match skyward_catalog::build::build(&PathBuf::from(src), &PathBuf::from(out)) {
        Ok(r) => {
            println!("offerings: {} {:?}", r.offerings, r.per_provider);
            println!(
                "notes: {} coalesced lines; rtt pairs: {}; egress pairs: {}",
                r.notes, r.rtt_pairs, r.egress_pairs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("build-catalog: {e}");
            ExitCode::FAILURE
        }
    }
}
