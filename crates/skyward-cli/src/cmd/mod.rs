pub mod agent;
pub mod bench;
pub mod bench_dashboard;
pub mod bench_failover;
pub mod bench_gateway;
pub mod bench_simulate;
pub mod bench_submit;
pub mod catalog;
pub mod catalog_fetch;
pub mod checkpoint;
pub mod client;
pub mod contracts;
pub mod drill;
pub mod gateway;
pub mod ledger;
pub mod plan;
pub mod server;
pub mod simulate;

use crate::error::CliError;
use std::io::Write;
use std::path::PathBuf;

/// Writes `path` through a temporary file beside it: an earlier file
/// there is replaced whole or not at all.
pub(crate) fn write_atomically(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<u64>,
) -> Result<u64, CliError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp-skyward");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let n = write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(n)
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Io(format!("{}: cannot write: {e}", path.display()))
    })
}
