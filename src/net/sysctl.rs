//! Kernel settings under /proc/sys, written best effort: a setting that cannot be written is
//! logged, and what needs it degrades (say, a link that keeps answering ARP) rather than fails.

use tracing::warn;

/// Writes `value` to `/proc/sys/{path}`, logging a failure.
pub(crate) fn set(path: &str, value: &str) {
    let full = format!("/proc/sys/{path}");
    if let Err(e) = std::fs::write(&full, value) {
        warn!(sysctl = %full, error = %e, "cannot set sysctl");
    }
}
