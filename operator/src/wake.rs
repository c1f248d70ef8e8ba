//! The next-wake step (pure): when to look at a connector again without a change to it.

use std::time::Duration;

use kube::runtime::controller::Action;

use crate::observe::{PodPhase, TaskPod};
use crate::plan::Plan;

/// How far past a due time the reconcile wakes, so that what is due is due when it looks.
const PAST_DUE: Duration = Duration::from_millis(50);

/// When to look again: when the plan wants to (a restart falls due), at the latest after
/// `resync` while a task runs or pods were just created or deleted (progress freshness), and
/// at the autoscaler's next evaluation. `None`: only on a change.
pub fn next(
    plan: &Plan,
    pods: &[TaskPod],
    resync: Duration,
    autoscaler: Option<Duration>,
) -> Option<Duration> {
    let running = pods.iter().any(|p| p.phase == PodPhase::Running);
    let mut wake = plan.wake_in;
    if running || !plan.create.is_empty() || !plan.delete.is_empty() {
        wake = Some(wake.map_or(resync, |w| w.min(resync)));
    }
    if let Some(next) = autoscaler {
        wake = Some(wake.map_or(next, |w| w.min(next)));
    }
    wake
}

/// The controller's action for a wake time from [`next`].
pub fn action(wake: Option<Duration>) -> Action {
    match wake {
        Some(wait) => Action::requeue(wait + PAST_DUE),
        None => Action::await_change(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_reason_to_look_wins() {
        let resync = Duration::from_secs(15);
        let idle = Plan::default();
        assert_eq!(next(&idle, &[], resync, None), None);
        assert_eq!(action(None), Action::await_change());
        let restart_due = Plan {
            wake_in: Some(Duration::from_secs(4)),
            ..Plan::default()
        };
        assert_eq!(
            next(&restart_due, &[], resync, None),
            Some(Duration::from_secs(4))
        );
        let creating = Plan {
            create: vec![(0, 0)],
            wake_in: Some(Duration::from_secs(60)),
            ..Plan::default()
        };
        assert_eq!(next(&creating, &[], resync, None), Some(resync));
        assert_eq!(
            next(&creating, &[], resync, Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            action(Some(Duration::from_secs(5))),
            Action::requeue(Duration::from_millis(5050))
        );
    }
}
