//! File descriptors: every connection holds one, so connection caps only protect the process
//! if they stay under `RLIMIT_NOFILE`. Above it `accept` fails, the kernel keeps the overflow
//! queued instead of refusing it, and one front door (a slow HTTP client, say) can starve the
//! others of descriptors.

use std::io;

/// Raises this process's soft `RLIMIT_NOFILE` (open file descriptors) to its hard limit and
/// returns the new soft limit. The Play server ([`crate::PlayServerBuilder::build`]) and
/// [`crate::serve_http`] call it themselves; a binary may call it first thing in `main`.
///
/// Platforms without the limit (Windows) report `u64::MAX`.
///
/// ```
/// let limit = playhouse::raise_fd_limit()?;
/// assert!(limit > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raise_fd_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The soft descriptor limit after trying to raise it; `u64::MAX` if it cannot be read.
pub(crate) fn fd_limit() -> u64 {
    match raise_fd_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not raise RLIMIT_NOFILE");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft)
        }
    }
}

/// The connection cap that fits `fd_limit` while leaving `reserve` descriptors to the rest of
/// the process: `min(wanted, max(fd_limit − reserve, fd_limit / 4))`. A cap at or above the
/// descriptor limit could never be reached: accepting would fail first and the overflow
/// would wait in the kernel's queue instead of being refused. (With fewer descriptors than the
/// reserve, a quarter of them still go to connections.)
pub(crate) fn connection_cap(wanted: usize, fd_limit: u64, reserve: u64) -> usize {
    let available = fd_limit.saturating_sub(reserve).max(fd_limit / 4);
    usize::try_from(available).map_or(wanted, |available| wanted.min(available))
}

/// [`connection_cap`], with one log line when it lowers the cap: a WARN when the cap was set
/// by hand (`wanted` differs from `default`: someone asked for that many), an INFO when it is
/// the default (lowering it is the documented behaviour, not a fault to act on).
pub(crate) fn clamp_connections(
    what: &str,
    wanted: usize,
    default: usize,
    reserve: usize,
) -> usize {
    let limit = fd_limit();
    let cap = connection_cap(wanted, limit, reserve as u64);
    if cap < wanted {
        const WHY: &str = "connection cap lowered to fit the file-descriptor limit \
                           (RLIMIT_NOFILE) with a reserve; raise the hard limit to allow more";
        if wanted == default {
            tracing::info!(wanted, cap, fd_limit = limit, reserve, "{what}: {WHY}");
        } else {
            tracing::warn!(wanted, cap, fd_limit = limit, reserve, "{what}: {WHY}");
        }
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn caps_fit_under_the_limit_with_a_reserve() {
        // The default Play cap under the common 20,000 limit: lowered to leave the reserve.
        assert_eq!(connection_cap(20_000, 20_000, 2_304), 17_696);
        // Room enough: unchanged.
        assert_eq!(connection_cap(20_000, 1_048_576, 2_304), 20_000);
        assert_eq!(connection_cap(1_024, 20_000, 256), 1_024);
        // Exactly fitting is fine.
        assert_eq!(connection_cap(17_696, 20_000, 2_304), 17_696);
        // Fewer descriptors than the reserve: a quarter still go to connections.
        assert_eq!(connection_cap(20_000, 1_024, 2_304), 256);
        assert_eq!(connection_cap(20_000, 1_000, 700), 300);
        assert_eq!(connection_cap(100, 1_024, 2_304), 100);
        // No limit known.
        assert_eq!(connection_cap(20_000, u64::MAX, 256), 20_000);
        assert_eq!(connection_cap(5, 0, 256), 0);
    }
}
