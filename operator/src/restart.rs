//! When a failed task is restarted: exponential backoff with jitter (pure).
//!
//! Restart bookkeeping lives on the objects that survive the operator: each task pod carries,
//! in its [`ANNOTATION_RESTARTS`](crate::names::ANNOTATION_RESTARTS) annotation, the task's
//! consecutive restart count at the time the pod was created (copied from
//! `status.tasks.items[].restarts`, which the operator reads back from the API server on
//! every reconcile). When that pod fails, the count becomes `annotation + 1` — or `1` when the
//! pod had been running for at least `resetAfterSeconds` before failing — and the next restart
//! time is `failed at + backoff(count)`. The jitter comes from the failed pod's UID, so the
//! decision is the same on every reconcile and on another operator replica.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Default first delay before restarting a failed task.
pub const DEFAULT_INITIAL_BACKOFF_SECONDS: u64 = 1;
/// Default upper bound of the restart delay.
pub const DEFAULT_MAX_BACKOFF_SECONDS: u64 = 300;
/// Default time a task must run before its consecutive restart count returns to zero.
pub const DEFAULT_RESET_AFTER_SECONDS: u64 = 600;
/// The delay is stretched by up to this fraction, so tasks that failed together do not
/// restart together.
pub const JITTER_FRACTION: f64 = 0.2;

/// The restart backoff of one connector (`spec.restartPolicy` with defaults applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Running time after which the consecutive restart count returns to zero.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(DEFAULT_INITIAL_BACKOFF_SECONDS),
            max: Duration::from_secs(DEFAULT_MAX_BACKOFF_SECONDS),
            reset_after: Duration::from_secs(DEFAULT_RESET_AFTER_SECONDS),
        }
    }
}

impl Backoff {
    /// Delay before restart number `restarts` (1 = the first restart): `initial * 2^(restarts-1)`,
    /// at most `max`, stretched by `jitter * JITTER_FRACTION` (`jitter` in `[0, 1)`) and still
    /// at most `max`.
    pub fn delay(&self, restarts: i32, jitter: f64) -> Duration {
        let exponent = restarts.saturating_sub(1).clamp(0, 30) as u32;
        let base = self
            .initial
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = jitter.clamp(0.0, 1.0) * JITTER_FRACTION;
        base.mul_f64(1.0 + jitter).min(self.max.max(base))
    }
}

/// What is known about a task pod whose process ended with a failure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Failure {
    /// Consecutive restarts recorded on the pod when it was created.
    pub restarts_before: i32,
    /// When the task's process started (its healthy-since time), if known.
    pub started_at: Option<Timestamp>,
    /// When the task's process ended.
    pub failed_at: Timestamp,
}

/// The decision for a failed task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestartDecision {
    /// Consecutive restarts of the task once it is restarted.
    pub restarts: i32,
    /// When the task is restarted.
    pub restart_at: Timestamp,
}

impl RestartDecision {
    /// Whether the restart is due at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.restart_at <= now
    }

    /// How long until the restart is due (zero when it is due).
    pub fn wait(&self, now: Timestamp) -> Duration {
        let left = self.restart_at.duration_since(now);
        Duration::try_from(left).unwrap_or(Duration::ZERO)
    }
}

/// Decides when a failed task is restarted. `jitter` is in `[0, 1)`.
pub fn decide(failure: &Failure, backoff: &Backoff, jitter: f64) -> RestartDecision {
    let ran_for = failure
        .started_at
        .map(|started| failure.failed_at.duration_since(started))
        .unwrap_or(SignedDuration::ZERO);
    let healthy_long_enough = SignedDuration::try_from(backoff.reset_after)
        .map(|reset| ran_for >= reset)
        .unwrap_or(false);
    let restarts = if healthy_long_enough {
        1
    } else {
        failure.restarts_before.saturating_add(1)
    };
    let delay = backoff.delay(restarts, jitter);
    let restart_at = SignedDuration::try_from(delay)
        .ok()
        .and_then(|d| failure.failed_at.checked_add(d).ok())
        .unwrap_or(failure.failed_at);
    RestartDecision {
        restarts,
        restart_at,
    }
}

/// Consecutive restarts shown for a task whose pod is running: the count recorded on the pod,
/// or zero once the pod has run for `reset_after`.
pub fn restarts_while_running(
    restarts_on_pod: i32,
    started_at: Option<Timestamp>,
    backoff: &Backoff,
    now: Timestamp,
) -> i32 {
    let Some(started) = started_at else {
        return restarts_on_pod;
    };
    match SignedDuration::try_from(backoff.reset_after) {
        Ok(reset) if now.duration_since(started) >= reset => 0,
        _ => restarts_on_pod,
    }
}

/// A jitter value in `[0, 1)` derived from a stable identifier (the failed pod's UID).
pub fn jitter_from(id: &str) -> f64 {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            reset_after: Duration::from_secs(600),
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n, 0.0).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.delay(1000, 0.0), Duration::from_secs(10));
        assert_eq!(b.delay(0, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stretches_by_at_most_a_fifth_and_never_beyond_the_maximum() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(600),
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(11));
        assert_eq!(
            b.delay(1, 0.999_999),
            b.delay(1, 0.999_999).min(Duration::from_secs(12))
        );
        assert!(b.delay(1, 0.999_999) > Duration::from_millis(11_900));
        assert_eq!(b.delay(3, 0.9), Duration::from_secs(30));
    }

    #[test]
    fn consecutive_failures_grow_the_delay() {
        let b = Backoff::default();
        let failure = Failure {
            restarts_before: 3,
            started_at: Some(ts("2026-11-22T10:00:00Z")),
            failed_at: ts("2026-11-22T10:00:05Z"),
        };
        let d = decide(&failure, &b, 0.0);
        assert_eq!(d.restarts, 4);
        assert_eq!(d.restart_at, ts("2026-11-22T10:00:13Z"));
        assert!(!d.is_due(ts("2026-11-22T10:00:12Z")));
        assert!(d.is_due(ts("2026-11-22T10:00:13Z")));
        assert_eq!(d.wait(ts("2026-11-22T10:00:10Z")), Duration::from_secs(3));
        assert_eq!(d.wait(ts("2026-11-22T10:01:00Z")), Duration::ZERO);
    }

    #[test]
    fn a_task_healthy_for_reset_after_starts_over() {
        let b = Backoff {
            reset_after: Duration::from_secs(60),
            ..Backoff::default()
        };
        let failure = Failure {
            restarts_before: 7,
            started_at: Some(ts("2026-11-22T10:00:00Z")),
            failed_at: ts("2026-11-22T10:01:00Z"),
        };
        let d = decide(&failure, &b, 0.0);
        assert_eq!(d.restarts, 1);
        assert_eq!(d.restart_at, ts("2026-11-22T10:01:01Z"));
        let now = ts("2026-11-22T10:01:00Z");
        assert_eq!(
            restarts_while_running(7, Some(ts("2026-11-22T10:00:00Z")), &b, now),
            0
        );
        assert_eq!(
            restarts_while_running(7, Some(ts("2026-11-22T10:00:30Z")), &b, now),
            7
        );
        assert_eq!(restarts_while_running(7, None, &b, now), 7);
    }

    #[test]
    fn a_failure_without_start_time_counts_as_consecutive() {
        let failure = Failure {
            restarts_before: 0,
            started_at: None,
            failed_at: ts("2026-11-22T10:00:00Z"),
        };
        let d = decide(&failure, &Backoff::default(), 0.0);
        assert_eq!(d.restarts, 1);
        assert_eq!(d.restart_at, ts("2026-11-22T10:00:01Z"));
    }

    #[test]
    fn jitter_is_stable_and_in_range() {
        let a = jitter_from("0b7c6c3e-3a41-4a5e-9d7e-1f7f1b0c2d11");
        assert_eq!(a, jitter_from("0b7c6c3e-3a41-4a5e-9d7e-1f7f1b0c2d11"));
        assert_ne!(a, jitter_from("0b7c6c3e-3a41-4a5e-9d7e-1f7f1b0c2d12"));
        for id in ["", "a", "pod", "ffffffff-ffff-ffff-ffff-ffffffffffff"] {
            let j = jitter_from(id);
            assert!((0.0..1.0).contains(&j), "{id}: {j}");
        }
    }
}
