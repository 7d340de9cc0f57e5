//! Children left running when the executor lets go of them (a server
//! that steps down or shuts down detaches its runs so they go on): one
//! thread waits for them as they end, so none stays a zombie in the
//! process table.

use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Children waited for at most this many at a time; beyond it the oldest
/// are waited for at once (blocking), which keeps the list bounded.
const REAPED_MAX: usize = 100_000;
const POLL: Duration = Duration::from_millis(500);

fn pending() -> &'static Mutex<Vec<Child>> {
    static PENDING: OnceLock<Mutex<Vec<Child>>> = OnceLock::new();
    PENDING.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("skyward-reaper".into())
            .spawn(|| loop {
                std::thread::sleep(POLL);
                reap_ready();
            });
        Mutex::new(Vec::new())
    })
}

/// Waits for `child` in the background once it ends.
pub fn reap_later(child: Child) {
    if let Ok(mut p) = pending().lock() {
        if p.len() >= REAPED_MAX {
            let mut oldest = p.remove(0);
            let _ = oldest.wait();
        }
        p.push(child);
    }
}

/// Reaps every child that has ended; returns how many are still waited for.
pub fn reap_ready() -> usize {
    let Ok(mut p) = pending().lock() else {
        return 0;
    };
    p.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    p.len()
}
