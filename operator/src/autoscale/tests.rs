//! The decision function on short traces written inline: each sample line is
//! `[seconds, tasks, [[committed, end], ...]]` for the partitions `orders[0..]` (`null`:
//! nothing committed; every partition starts at 0).

use std::collections::BTreeMap;

use ferry_crds::connector::AutoscalingSpec;
use k8s_openapi::jiff::Timestamp;

use super::decide::{decide, Decision, History, Input, PartitionOffsets, Policy, Sample, Target};
use super::{outcome, with_decision};

const T0: i64 = 1_795_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds).unwrap()
}

fn policy(yaml: &str) -> Policy {
    let spec: AutoscalingSpec = serde_yaml::from_str(yaml).unwrap();
    Policy::from_spec(&spec, None, false)
}

type Line = (i64, i32, Vec<(Option<i64>, i64)>);

fn sample((seconds, tasks, partitions): &Line) -> Sample {
    Sample {
        at: at(*seconds),
        tasks: *tasks,
        input: Input::Partitions(
            partitions
                .iter()
                .enumerate()
                .map(|(i, (committed, end))| PartitionOffsets {
                    topic: "orders".into(),
                    partition: i as i32,
                    committed: *committed,
                    start: 0,
                    end: *end,
                })
                .collect(),
        ),
    }
}

/// Feeds the samples (the task count of each is the count decided before it, the first
/// one's as given) and returns every decision.
fn run(policy: &Policy, yaml: &str) -> Vec<Decision> {
    let yaml: Vec<&str> = yaml.lines().map(str::trim).collect();
    let lines: Vec<Line> = serde_yaml::from_str(&yaml.join("\n")).unwrap();
    let mut history = History::default();
    let mut current = lines[0].1;
    let mut decisions = Vec::new();
    for line in &lines {
        let mut s = sample(line);
        s.tasks = current;
        let now = s.at;
        history.observe(s, policy);
        let d = decide(&history, current, policy, now);
        history.record(now, current, &d);
        current = d.desired;
        decisions.push(d);
    }
    decisions
}

fn counts(decisions: &[Decision]) -> Vec<i32> {
    decisions.iter().map(|d| d.desired).collect()
}

#[test]
fn defaults_follow_the_horizontal_pod_autoscaler() {
    let p = policy("{maxTasks: 8, lagPerTask: 100}");
    assert_eq!(p.min_tasks, 1);
    assert_eq!(p.target, Target::LagPerTask(100));
    assert_eq!(p.scale_up.stabilization.as_secs(), 0);
    assert_eq!((p.scale_up.tasks, p.scale_up.percent), (4, 100));
    assert_eq!(p.scale_up.period.as_secs(), 15);
    assert_eq!(p.scale_down.stabilization.as_secs(), 300);
    assert_eq!((p.scale_down.tasks, p.scale_down.percent), (1, 10));
    assert_eq!(
        p.scale_down.period.as_secs(),
        60,
        "longer than the session timeout"
    );
    assert_eq!(p.reassignment.as_secs(), 90);
    assert!(p.exclude_persistent_lag && p.cap_at_partitions_with_lag);
    assert_eq!(p.persistent_after.as_secs(), 120);
}

#[test]
fn lag_scales_up_at_once_within_the_step_limit_and_the_partitions_with_lag() {
    let p = policy("{maxTasks: 10, lagPerTask: 1000}");
    let d = run(
        &p,
        "- [0, 1, [[0, 2000], [0, 2000], [0, 2000], [0, 2000], [0, 2000], [0, 2000]]]
         - [15, 1, [[0, 2000], [0, 2000], [0, 2000], [0, 2000], [0, 2000], [0, 2000]]]",
    );
    assert_eq!(counts(&d), vec![5, 6]);
    assert_eq!(
        d[0].reason,
        "lag 12000 on 6 of 6 partitions (consuming unknown, producing unknown); \
         target 1000 per task: wants 12 tasks; capped at 6 partitions with lag; \
         scale-up limited to 4 tasks per 15 s (scaleUp); scaling up from 1 to 5"
    );
    assert_eq!(d[0].recommendation, 6);
    assert_eq!(
        d[1].consumed_per_second, None,
        "the count changed: no consumption rate at 5 tasks yet"
    );
    assert_eq!(d[1].produced_per_second, Some(0.0));
}

#[test]
fn without_the_partition_cap_a_sink_still_runs_at_most_one_task_per_partition() {
    let p = policy("{maxTasks: 10, lagPerTask: 100, capAtPartitionsWithLag: false}");
    let d = run(&p, "- [0, 1, [[0, 5000], [0, 0], [0, 0]]]");
    assert_eq!(d[0].desired, 3);
    assert!(
        d[0].reason.contains("capped at 3 partitions;"),
        "{}",
        d[0].reason
    );
    let capped = policy("{maxTasks: 10, lagPerTask: 100}");
    let d = run(&capped, "- [0, 1, [[0, 5000], [0, 0], [0, 0]]]");
    assert_eq!(d[0].desired, 1, "one partition has lag: {}", d[0].reason);
}

#[test]
fn scale_down_waits_for_its_window_then_goes_to_min_tasks() {
    let p = policy(
        "{minTasks: 1, maxTasks: 4, lagPerTask: 100, scaleDownStabilizationSeconds: 60,
          scaleDown: {tasks: 0, percent: 100}}",
    );
    let d = run(
        &p,
        "- [0, 4, [[0, 400], [0, 400], [0, 400], [0, 400]]]
         - [15, 4, [[400, 400], [400, 400], [400, 400], [400, 400]]]
         - [45, 4, [[400, 400], [400, 400], [400, 400], [400, 400]]]
         - [75, 4, [[400, 400], [400, 400], [400, 400], [400, 400]]]",
    );
    assert_eq!(counts(&d), vec![4, 4, 4, 1]);
    assert!(
        d[1].reason
            .ends_with("scale-down waits for the stabilization window (60 s); keeping 4 tasks"),
        "{}",
        d[1].reason
    );
    assert!(
        d[3].reason.ends_with("scaling down from 4 to 1"),
        "{}",
        d[3].reason
    );
    assert!(
        d[3].reason.contains("at least minTasks 1"),
        "{}",
        d[3].reason
    );
}

#[test]
fn scale_down_steps_are_limited_per_period() {
    let p = policy(
        "{minTasks: 0, maxTasks: 8, lagPerTask: 100, scaleDownStabilizationSeconds: 0,
          scaleDown: {tasks: 2, percent: 0, periodSeconds: 30}}",
    );
    let d = run(
        &p,
        "- [0, 8, [[0, 0]]]
         - [15, 8, [[0, 0]]]
         - [30, 8, [[0, 0]]]
         - [45, 8, [[0, 0]]]",
    );
    assert_eq!(counts(&d), vec![6, 6, 4, 4]);
    assert!(
        d[1].reason
            .contains("scale-down limited to 2 tasks per 30 s"),
        "{}",
        d[1].reason
    );
}

#[test]
fn a_connector_at_zero_wakes_only_above_the_activation_lag_and_sleeps_at_or_below_it() {
    let p = policy(
        "{minTasks: 0, maxTasks: 4, lagPerTask: 1000, activationLag: 500,
          scaleDownStabilizationSeconds: 0}",
    );
    let d = run(
        &p,
        "- [0, 0, [[0, 300]]]
         - [15, 0, [[0, 800]]]
         - [30, 1, [[800, 800]]]",
    );
    assert_eq!(counts(&d), vec![0, 1, 0]);
    assert!(
        d[0].reason
            .contains("wants 0 tasks: lag at or below activationLag 500; keeping 0 tasks"),
        "{}",
        d[0].reason
    );
    assert!(
        d[1].reason.ends_with("scaling up from 0 to 1"),
        "{}",
        d[1].reason
    );
    assert!(
        d[2].reason.ends_with("scaling down from 1 to 0"),
        "{}",
        d[2].reason
    );
}

#[test]
fn a_stuck_partition_is_left_out_after_the_persistent_lag_window() {
    let yaml =
        "{maxTasks: 8, lagPerTask: 1000, persistentLagSeconds: 30, capAtPartitionsWithLag: false}";
    let trace = "
        - [0, 2, [[100, 5100], [1000, 1100]]]
        - [15, 2, [[100, 5100], [1100, 1200]]]
        - [30, 2, [[100, 5100], [1200, 1300]]]
        - [45, 2, [[100, 5100], [1300, 1400]]]";
    let d = run(&policy(yaml), trace);
    assert_eq!(
        counts(&d)[0],
        2,
        "5100 waiting: wants 6, capped at 2 partitions"
    );
    let last = d.last().unwrap();
    assert_eq!(last.lag, Some(100));
    assert_eq!(last.persistent_lag, Some(5000));
    assert!(
        last.reason.starts_with(
            "lag 100 on 1 of 2 partitions (consuming 7/s, producing 7/s), 5000 more left out as \
             persistent (orders[0] at offset 100 for 45 s)"
        ),
        "{}",
        last.reason
    );
    assert_eq!(last.recommendation, 1);

    let counted = policy(&yaml.replace("persistentLagSeconds: 30", "excludePersistentLag: false"));
    let d = run(&counted, trace);
    assert_eq!(d.last().unwrap().lag, Some(5100));
    assert_eq!(d.last().unwrap().desired, 2);
}

#[test]
fn a_connector_with_persistent_lag_keeps_one_task_instead_of_sleeping() {
    let p = policy(
        "{minTasks: 0, maxTasks: 4, lagPerTask: 100, persistentLagSeconds: 30,
          scaleDownStabilizationSeconds: 0}",
    );
    let d = run(
        &p,
        "- [0, 2, [[100, 600], [50, 50]]]
         - [15, 2, [[100, 600], [50, 50]]]
         - [30, 2, [[100, 600], [50, 50]]]
         - [45, 1, [[100, 600], [50, 50]]]",
    );
    assert_eq!(counts(&d), vec![1, 1, 1, 1]);
    let last = &d[3];
    assert!(
        last.reason.contains("left out as persistent"),
        "{}",
        last.reason
    );
    assert!(
        last.reason
            .contains("wants 0 tasks: lag at or below activationLag 0; at least 1 task while lag is persistent; keeping 1 task"),
        "{}",
        last.reason
    );
}

#[test]
fn drain_time_uses_the_measured_task_capacity_and_the_production_rate() {
    let p = policy("{maxTasks: 10, drainSeconds: 60}");
    let parts = |c: i64, e: i64| format!("[{}]", vec![format!("[{c}, {e}]"); 8].join(", "));
    // 2 tasks, every partition has lag: they commit 8000 records in 30 s (133/s per task),
    // while 4000 more arrive (133/s).
    let d = run(
        &p,
        &format!(
            "- [0, 2, {}]\n- [30, 2, {}]",
            parts(10000, 40000),
            parts(11000, 40500)
        ),
    );
    assert_eq!(d[0].desired, 2, "no rate yet: {}", d[0].reason);
    assert!(
        d[0].reason
            .contains("no consumption measured yet at 2 tasks, wants no change"),
        "{}",
        d[0].reason
    );
    let last = d.last().unwrap();
    assert_eq!(
        last.reason,
        "lag 236000 on 8 of 8 partitions (consuming 267/s, producing 133/s); keeping up and \
         draining in 60 s needs 4067/s, a task commits 133/s: wants 8 tasks; scale-up limited \
         to 4 tasks per 15 s (scaleUp); scaling up from 2 to 6"
    );
    assert_eq!(last.recommendation, 8);

    // Once the lag is gone, the production rate alone sets the count.
    let mut history = History::default();
    for (i, (committed, end, tasks)) in [(0, 6000, 2), (6000, 12000, 2), (12000, 12000, 2)]
        .into_iter()
        .enumerate()
    {
        history.observe(
            sample(&(
                i as i64 * 30,
                tasks,
                vec![(Some(committed), end), (Some(committed), end)],
            )),
            &p,
        );
    }
    let d = decide(&history, 2, &p, at(60));
    assert_eq!(
        history.capacity(),
        Some(200.0),
        "12000 in 30 s by 2 busy tasks"
    );
    assert_eq!(
        d.recommendation, 1,
        "200/s arrive, a task does 200/s: {}",
        d.reason
    );
}

#[test]
fn drain_time_without_a_known_capacity_scales_by_the_time_to_drain() {
    let p = policy("{maxTasks: 10, drainSeconds: 60, capAtPartitionsWithLag: false}");
    // 4 tasks but only 2 of 4 partitions have lag: the tasks' capacity is not measured.
    let d = run(
        &p,
        "- [0, 4, [[0, 100000], [0, 100000], [0, 0], [0, 0]]]
         - [30, 4, [[15000, 100000], [15000, 100000], [0, 0], [0, 0]]]",
    );
    let last = d.last().unwrap();
    assert!(
        last.reason
            .contains("drains in 170 s at the current rate, target 60 s: wants 12 tasks"),
        "{}",
        last.reason
    );
    assert_eq!(last.recommendation, 4, "at most one task per partition");
    let d = run(&p, "- [0, 4, [[0, 0], [0, 0]]]");
    assert!(
        d[0].reason.contains("target drain in 60 s: wants 0 tasks"),
        "{}",
        d[0].reason
    );
}

#[test]
fn a_source_uses_the_task_backlog_and_keeps_one_task() {
    let spec: AutoscalingSpec =
        serde_yaml::from_str("{minTasks: 0, maxTasks: 4, lagPerTask: 1000000}").unwrap();
    let p = Policy::from_spec(&spec, Some(1), true);
    let mut history = History::default();
    history.observe(
        Sample {
            at: at(0),
            tasks: 1,
            input: Input::Backlog(BTreeMap::from([(0, 5_000_000)])),
        },
        &p,
    );
    let d = decide(&history, 1, &p, at(0));
    assert_eq!(d.desired, 1);
    assert_eq!(d.lag, Some(5_000_000));
    assert_eq!(
        d.reason,
        "backlog 5000000; target 1000000 per task: wants 5 tasks; capped at the plugin's 1 task; \
         keeping 1 task"
    );
    let mut history = History::default();
    history.observe(
        Sample {
            at: at(0),
            tasks: 1,
            input: Input::Backlog(BTreeMap::from([(0, 0)])),
        },
        &p,
    );
    let d = decide(&history, 1, &p, at(0));
    assert_eq!(d.desired, 1);
    assert!(
        d.reason.contains("at least 1 task (a source's backlog"),
        "{}",
        d.reason
    );
}

#[test]
fn without_a_reading_the_count_is_kept() {
    let p = policy("{maxTasks: 4, lagPerTask: 10}");
    let d = decide(&History::default(), 3, &p, at(0));
    assert_eq!(d.desired, 3);
    assert_eq!(d.reason, "no lag reading yet; keeping 3 tasks");
}

#[test]
fn after_an_operator_restart_the_scale_down_window_starts_over() {
    let p = policy("{maxTasks: 4, lagPerTask: 10, scaleDownStabilizationSeconds: 60}");
    let mut history = History::default();
    history.observe(sample(&(0, 4, vec![(Some(0), 0)])), &p);
    history.assume(at(0), 4);
    let d = decide(&history, 4, &p, at(0));
    assert_eq!(d.desired, 4, "{}", d.reason);
}

#[test]
fn the_status_keeps_the_time_of_the_last_change_and_the_event_says_why() {
    let p = policy("{maxTasks: 10, lagPerTask: 1000}");
    let d = run(&p, "- [0, 1, [[0, 3000], [0, 3000]]]");
    let first = outcome(None, 1, &d[0], at(0));
    assert_eq!(first.status.desired_tasks, 2);
    assert_eq!(first.status.lag, Some(6000));
    assert_eq!(first.status.at.as_ref().map(|t| t.0), Some(at(0)));
    let note = first.scaled.expect("a Scaled Event");
    assert_eq!(note.reason, "Scaled");
    assert!(
        note.note
            .starts_with("autoscaler: from 1 to 2 tasks: lag 6000"),
        "{}",
        note.note
    );
    let kept = Decision {
        desired: 2,
        ..d[0].clone()
    };
    let second = outcome(Some(&first.status), 2, &kept, at(15));
    assert!(second.scaled.is_none());
    assert_eq!(second.status.at.as_ref().map(|t| t.0), Some(at(0)));

    let c: ferry_crds::KafkaConnector = serde_yaml::from_str(
        "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {name: c, namespace: n}\n\
         spec: {kafka: {bootstrapServers: 'k:1'}, sink: {topics: [t], discard: {}},\n\
         autoscaling: {minTasks: 0, maxTasks: 4, lagPerTask: 10}}",
    )
    .unwrap();
    assert_eq!(crate::inputs::task_count(&c), 0);
    let c = with_decision(&c, Some(&second));
    assert_eq!(crate::inputs::task_count(&c), 2);
}

#[test]
fn the_memory_evaluates_once_per_interval_and_starts_over_for_a_new_generation() {
    use std::time::Duration;

    let memory = super::Autoscalers::default();
    let p = policy("{maxTasks: 8, lagPerTask: 100, scaleDownStabilizationSeconds: 60}");
    let busy = |t: i64| sample(&(t, 4, vec![(Some(0), 400), (Some(0), 400)]));
    let idle = |t: i64| sample(&(t, 4, vec![(Some(400), 400), (Some(400), 400)]));
    let interval = Duration::from_secs(15);

    // The first decision counts the count in effect as wanted: no scale-down yet.
    let d = memory.step("n/c", 1, &p, 4, Some(busy(0)), at(0)).unwrap();
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(
        d.reason
            .contains("wants 8 tasks; capped at 2 partitions with lag"),
        "{}",
        d.reason
    );
    assert!(memory.evaluated_recently("n/c", at(10), interval));
    assert!(
        !memory.evaluated_recently("n/c", at(14), interval),
        "a requeue landing a little early still evaluates"
    );
    assert!(!memory.evaluated_recently("n/other", at(10), interval));

    // Without a reading nothing is decided, but the time is kept.
    assert!(memory.step("n/c", 1, &p, 4, None, at(15)).is_none());
    assert!(memory.evaluated_recently("n/c", at(20), interval));

    // Idle for longer than the window: down to minTasks.
    let (same, twin) = (super::Autoscalers::default(), super::Autoscalers::default());
    for m in [&same, &twin] {
        m.step("n/c", 1, &p, 4, Some(busy(0)), at(0)).unwrap();
        m.step("n/c", 1, &p, 4, Some(idle(30)), at(30)).unwrap();
    }
    let d = same
        .step("n/c", 1, &p, 4, Some(idle(100)), at(100))
        .unwrap();
    assert_eq!(d.desired, 3, "{}", d.reason);
    assert!(
        d.reason
            .contains("scale-down limited to 1 task per 60 s (scaleDown)"),
        "{}",
        d.reason
    );
    // A new generation starts a new history, whose first decision keeps the count.
    let d = twin
        .step("n/c", 2, &p, 4, Some(idle(100)), at(100))
        .unwrap();
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(d.reason.contains("scale-down waits"), "{}", d.reason);

    memory.forget("n/c");
    assert!(!memory.evaluated_recently("n/c", at(46), interval));
}

#[test]
fn what_piles_up_on_a_removed_tasks_partitions_is_not_load() {
    let p = policy(
        "{maxTasks: 4, lagPerTask: 1000, scaleDownStabilizationSeconds: 0, capAtPartitionsWithLag: false}",
    );
    // Two partitions at 100/s and two tasks with nothing to do: one goes. Its partition (1)
    // then waits for the removed task's static membership to expire (45 s).
    let d = run(
        &p,
        "- [0, 2, [[1000, 1000], [1000, 1000]]]
         - [15, 1, [[2500, 2500], [1000, 2500]]]
         - [30, 1, [[4000, 4000], [1000, 4000]]]
         - [60, 1, [[7000, 7000], [7000, 7000]]]",
    );
    let reasons: Vec<&String> = d.iter().map(|d| &d.reason).collect();
    assert_eq!(counts(&d), vec![1, 1, 1, 1], "{reasons:?}");
    assert_eq!(d[2].lag, Some(0), "{reasons:?}");
    assert!(
        d[2].reason.starts_with(
            "lag 0 on 0 of 2 partitions (consuming 100/s, producing 200/s), 3000 more piled up \
             on 1 partitions of removed tasks"
        ),
        "{reasons:?}"
    );
    // Without the allowance, 3000 waiting would want 3 tasks.
    let mut strict = p.clone();
    strict.reassignment = std::time::Duration::ZERO;
    let d = run(
        &strict,
        "- [0, 2, [[1000, 1000], [1000, 1000]]]
         - [15, 1, [[2500, 2500], [1000, 2500]]]
         - [30, 1, [[4000, 4000], [1000, 4000]]]",
    );
    assert_eq!(counts(&d), vec![1, 2, 2]);
}

#[test]
fn a_connector_woken_soon_after_scaling_to_zero_counts_all_its_lag() {
    let p = policy(
        "{minTasks: 0, maxTasks: 4, lagPerTask: 1000, scaleDownStabilizationSeconds: 0,
          scaleDown: {tasks: 0, percent: 100}, capAtPartitionsWithLag: false}",
    );
    let d = run(
        &p,
        "- [0, 2, [[1000, 1000], [1000, 1000]]]
         - [15, 0, [[1000, 2000], [1000, 2000]]]
         - [30, 2, [[1000, 3000], [1000, 3000]]]",
    );
    assert_eq!(
        counts(&d),
        vec![0, 2, 2],
        "{:?}",
        d.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    assert_eq!(d[2].lag, Some(4000));
}

#[test]
fn absurd_offsets_saturate_instead_of_overflowing() {
    let p = policy("{maxTasks: 4, lagPerTask: 1}");
    let max = i64::MAX;
    let d = run(
        &p,
        &format!("- [0, 1, [[null, {max}], [null, {max}]]]\n- [15, 1, [[0, {max}], [0, {max}]]]"),
    );
    assert_eq!(d[1].lag, Some(i64::MAX));
    assert_eq!(d[1].desired, 2, "{}", d[1].reason);
}
