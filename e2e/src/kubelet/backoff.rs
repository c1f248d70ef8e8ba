//! The crash-loop backoff of restarted containers, as the kubelet computes it.

use std::time::Duration;

/// How long a container that ran at least this long is considered healthy: its backoff
/// starts over.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// Crash-loop backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashLoopBackoff {
    /// Delay before the second restart (the first restart is immediate); doubles per restart.
    pub base: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for CrashLoopBackoff {
    fn default() -> Self {
        CrashLoopBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl CrashLoopBackoff {
    /// The delay before restart number `consecutive` (1-based) of a series of crashes
    /// without a long healthy run in between: 0, base, 2·base, 4·base, … capped at `max`.
    pub fn delay(&self, consecutive: u32) -> Duration {
        if consecutive <= 1 {
            return Duration::ZERO;
        }
        let doublings = (consecutive - 2).min(32);
        self.base
            .checked_mul(1u32 << doublings.min(31))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The consecutive-crash count after a container exited having run for `ran`.
    pub fn next_count(previous: u32, ran: Duration) -> u32 {
        if ran >= BACKOFF_RESET_AFTER {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let b = CrashLoopBackoff::default();
        let secs: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(1000), Duration::from_secs(300));
    }

    #[test]
    fn configurable_base() {
        let b = CrashLoopBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(4), Duration::from_secs(4));
    }

    #[test]
    fn a_long_run_resets_the_series() {
        assert_eq!(CrashLoopBackoff::next_count(5, Duration::from_secs(10)), 6);
        assert_eq!(CrashLoopBackoff::next_count(5, Duration::from_secs(601)), 1);
    }
}
