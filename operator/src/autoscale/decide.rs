//! The autoscaler's decision, a pure function of the recorded signals, the current task
//! count, the policy and the time.
//!
//! 1. **Lag.** Sinks: per partition, the log-end offset minus the consumer group's committed
//!    offset (from the partition's start when nothing is committed). Sources: the sum of the
//!    backlog the tasks export. A partition whose committed offset has not moved for
//!    `persistentLagSeconds` of running tasks while records waited is *persistent*: its lag
//!    is left out (more tasks would not drain a stuck partition) and the reason names it.
//! 2. **Wanted count.** `lagPerTask`: `ceil(lag / lagPerTask)`. `drainSeconds`: once a task's
//!    capacity is known (records committed per second per task while every task had lag),
//!    `ceil((production rate + lag / drainSeconds) / capacity)`: enough tasks to keep up
//!    and drain the lag in time. Before that, `ceil(tasks * (lag / consumption rate) /
//!    drainSeconds)` with the rate measured over the last minute at the current count (no
//!    lag: zero; no rate yet: the count is kept). With `minTasks: 0`, a lag at or below
//!    `activationLag` wants zero tasks.
//! 3. **Bounds.** A sink runs at most one task per partition, and — with
//!    `capAtPartitionsWithLag` — at most one per partition with lag; at most the plugin's
//!    parallelism; within `minTasks..=maxTasks` (a source keeps at least one task: its
//!    backlog is only known from a running task; a connector with persistent lag keeps one
//!    too, so that its failure stays visible and is retried).
//! 4. **Stabilization**, as the HorizontalPodAutoscaler: scale up to the lowest count wanted
//!    within the scale-up window, down to the highest count wanted within the scale-down
//!    window.
//! 5. **Step limits**: within a period, the count changes by at most the larger of `tasks`
//!    and `percent` % of the count at the start of the period.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ferry_crds::connector::{AutoscalingSpec, ScaleStep};
use ferry_crds::contract::SINK_SESSION_TIMEOUT_MS;
use k8s_openapi::jiff::Timestamp;

/// Window over which consumption and production rates are measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// [`Policy::reassignment`] in session timeouts: one for the removed task's membership to
/// expire, one for the partition's new owner to drain what piled up meanwhile.
pub const REASSIGNMENT_SESSIONS: u32 = 2;

/// What the task count aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Records (or backlog units) waiting per task.
    LagPerTask(i64),
    /// Seconds to drain the lag at the measured consumption rate.
    DrainSeconds(u32),
}

/// How fast the count may change in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// A change must be wanted for this long (see the module documentation).
    pub stabilization: Duration,
    /// Tasks added or removed per period.
    pub tasks: i32,
    /// Percent of the count at the period's start added or removed per period.
    pub percent: i32,
    /// Length of the period.
    pub period: Duration,
}

/// The autoscaling policy of one connector: `spec.autoscaling` plus what the connector's kind
/// and plugin impose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `minTasks`.
    pub min_tasks: i32,
    /// `maxTasks`.
    pub max_tasks: i32,
    /// `lagPerTask` or `drainSeconds`.
    pub target: Target,
    /// `activationLag`.
    pub activation_lag: i64,
    /// `scaleUpStabilizationSeconds` and `scaleUp`.
    pub scale_up: Step,
    /// `scaleDownStabilizationSeconds` and `scaleDown`.
    pub scale_down: Step,
    /// `excludePersistentLag`.
    pub exclude_persistent_lag: bool,
    /// `persistentLagSeconds`.
    pub persistent_after: Duration,
    /// How long after a scale-down what piles up on the partitions of the removed tasks is
    /// not load: their static group memberships expire after the session timeout, and the
    /// new owners drain the backlog.
    pub reassignment: Duration,
    /// `capAtPartitionsWithLag`.
    pub cap_at_partitions_with_lag: bool,
    /// The plugin's most tasks (`None`: no limit).
    pub plugin_max: Option<i32>,
    /// A source connector (lag is the tasks' backlog; never below one task).
    pub source: bool,
}

impl Policy {
    /// The policy of `spec.autoscaling`, for a source or sink whose plugin runs at most
    /// `plugin_max` tasks.
    pub fn from_spec(spec: &AutoscalingSpec, plugin_max: Option<i32>, source: bool) -> Policy {
        let step = |stabilization: u32, s: &ScaleStep| Step {
            stabilization: Duration::from_secs(u64::from(stabilization)),
            tasks: s.tasks.max(0),
            percent: s.percent.max(0),
            period: Duration::from_secs(u64::from(s.period_seconds.max(1))),
        };
        let min_tasks = spec.min_tasks.max(0);
        Policy {
            min_tasks,
            max_tasks: spec.max_tasks.max(min_tasks).max(1),
            target: match (spec.lag_per_task, spec.drain_seconds) {
                (_, Some(seconds)) => Target::DrainSeconds(seconds.max(1)),
                (Some(lag), None) => Target::LagPerTask(lag.max(1)),
                // Refused by the schema; a resource stored under an older CRD gets the
                // least surprising target.
                (None, None) => Target::LagPerTask(i64::MAX),
            },
            activation_lag: spec.activation_lag.max(0),
            scale_up: step(spec.scale_up_stabilization_seconds, &spec.scale_up),
            scale_down: step(spec.scale_down_stabilization_seconds, &spec.scale_down),
            exclude_persistent_lag: spec.exclude_persistent_lag,
            persistent_after: Duration::from_secs(u64::from(spec.persistent_lag_seconds)),
            reassignment: Duration::from_millis(SINK_SESSION_TIMEOUT_MS) * REASSIGNMENT_SESSIONS,
            cap_at_partitions_with_lag: spec.cap_at_partitions_with_lag,
            plugin_max,
            source,
        }
    }

    /// The fewest tasks the autoscaler runs: `minTasks`, at least 1 for a source.
    pub fn floor(&self) -> i32 {
        if self.source {
            self.min_tasks.max(1)
        } else {
            self.min_tasks
        }
    }

    /// The most tasks the autoscaler runs: `maxTasks` and the plugin's parallelism.
    pub fn ceiling(&self) -> i32 {
        let max = self
            .plugin_max
            .map_or(self.max_tasks, |p| self.max_tasks.min(p));
        max.max(self.floor())
    }

    /// How long the recorded history must reach back for this policy.
    pub fn history_span(&self) -> Duration {
        [
            RATE_WINDOW,
            self.persistent_after,
            self.scale_up.stabilization,
            self.scale_down.stabilization,
            self.scale_up.period,
            self.scale_down.period,
        ]
        .into_iter()
        .max()
        .unwrap_or(RATE_WINDOW)
            + Duration::from_secs(60)
    }
}

/// One topic partition a sink reads, as read from Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The consumer group's committed offset, if any.
    pub committed: Option<i64>,
    /// Offset of the first record still in the partition.
    pub start: i64,
    /// Offset after the last record.
    pub end: i64,
}

impl PartitionOffsets {
    /// Records after the committed offset (after the start when nothing is committed).
    pub fn lag(&self) -> i64 {
        (self.end - self.position()).max(0)
    }

    /// Where the group is: the committed offset, or the start.
    fn position(&self) -> i64 {
        self.committed.unwrap_or(self.start).max(self.start)
    }

    fn name(&self) -> String {
        format!("{}[{}]", self.topic, self.partition)
    }
}

/// What was read at one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A sink's partitions.
    Partitions(Vec<PartitionOffsets>),
    /// A source's backlog per running task index.
    Backlog(BTreeMap<i32, i64>),
}

/// The signals read at one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When they were read.
    pub at: Timestamp,
    /// The task count in effect then.
    pub tasks: i32,
    /// What was read.
    pub input: Input,
}

/// The autoscaler's memory of one connector: recent samples, the counts it wanted, and the
/// changes it made. Kept in the operator's memory only: after an operator restart the
/// windows start empty (see [`History::record`]).
#[derive(Clone, Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
    recommendations: VecDeque<(Timestamp, i32)>,
    changes: VecDeque<(Timestamp, i32, i32)>,
    capacity: Option<f64>,
}

impl History {
    /// Adds a sample (they must come in time order) and forgets what the policy no longer
    /// needs.
    pub fn observe(&mut self, sample: Sample, policy: &Policy) {
        let now = sample.at;
        if let Some(rate) = self.samples.back().and_then(|p| saturated_rate(p, &sample)) {
            // Recent measurements count most: a slower downstream lowers it again.
            self.capacity = Some(self.capacity.map_or(rate, |c| (c + rate) / 2.0));
        }
        self.samples.push_back(sample);
        self.prune(now, policy);
    }

    /// Records one task commits per second when it has work waiting, measured while every
    /// task had a partition with lag (`None` until such a time was seen).
    pub fn capacity(&self) -> Option<f64> {
        self.capacity
    }

    /// Records a decision made at `now` with `current` tasks. An empty history (a restarted
    /// operator) has no recommendation in the scale-down window, so the first decisions after
    /// a restart may scale down without waiting for the window; [`History::assume`] avoids
    /// that.
    pub fn record(&mut self, now: Timestamp, current: i32, decision: &Decision) {
        self.recommendations
            .push_back((now, decision.recommendation));
        if decision.desired != current {
            self.changes.push_back((now, current, decision.desired));
        }
    }

    /// Seeds the windows after an operator restart: the count in effect counts as wanted at
    /// `now`, so the scale-down stabilization window starts again instead of being skipped.
    pub fn assume(&mut self, now: Timestamp, current: i32) {
        if self.recommendations.is_empty() {
            self.recommendations.push_back((now, current));
        }
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Number of samples kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample is kept.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn prune(&mut self, now: Timestamp, policy: &Policy) {
        let span = policy.history_span();
        let old = |at: &Timestamp| age(now, *at) > span;
        while self.samples.len() > 1 && self.samples.front().is_some_and(|s| old(&s.at)) {
            self.samples.pop_front();
        }
        while self.recommendations.front().is_some_and(|r| old(&r.0)) {
            self.recommendations.pop_front();
        }
        while self.changes.front().is_some_and(|c| old(&c.0)) {
            self.changes.pop_front();
        }
    }
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The task count to run.
    pub desired: i32,
    /// The count the signals asked for, within the bounds, before stabilization and step
    /// limits (recorded for the stabilization windows).
    pub recommendation: i32,
    /// Why, in words.
    pub reason: String,
    /// The lag counted.
    pub lag: Option<i64>,
    /// Lag left out as persistent.
    pub persistent_lag: Option<i64>,
    /// Records committed per second (sinks).
    pub consumed_per_second: Option<f64>,
    /// Records produced to the input topics per second (sinks).
    pub produced_per_second: Option<f64>,
}

/// Records committed per second per task between `earlier` and `later`, when both saw the
/// same task count and enough partitions with lag to keep every task busy.
fn saturated_rate(earlier: &Sample, later: &Sample) -> Option<f64> {
    if earlier.tasks <= 0 || earlier.tasks != later.tasks {
        return None;
    }
    let (before, after) = (partitions_of(earlier), partitions_of(later));
    let busy = |ps: &[PartitionOffsets]| {
        let with_lag = ps.iter().filter(|p| p.lag() > 0).count();
        with_lag > 0 && with_lag >= ps.len().min(usize::try_from(earlier.tasks).unwrap_or(0))
    };
    if !busy(before) || !busy(after) {
        return None;
    }
    let seconds = seconds_between(earlier.at, later.at);
    if seconds < 1.0 {
        return None;
    }
    let committed: i64 = after
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let q = same_partition(before, p, i)?;
            Some((p.position() - q.position()).max(0))
        })
        .fold(0i64, i64::saturating_add);
    (committed > 0).then(|| committed as f64 / seconds / f64::from(earlier.tasks))
}

/// What the latest sample and its history say.
#[derive(Clone, Debug, Default, PartialEq)]
struct Signals {
    lag: i64,
    persistent_lag: i64,
    persistent: Vec<String>,
    partitions: usize,
    partitions_with_lag: usize,
    consumed: Option<f64>,
    produced: Option<f64>,
    capacity: Option<f64>,
    /// Per partition whose lag counts: its lag and records produced to it per second.
    load: Vec<(i64, f64)>,
    /// Lag of the partitions of tasks removed less than [`Policy::reassignment`] ago that
    /// have not moved since, and how many they are.
    reassigning_lag: i64,
    reassigning: usize,
}

/// Decides the task count (pure). `current` is the count in effect.
pub fn decide(history: &History, current: i32, policy: &Policy, now: Timestamp) -> Decision {
    let Some(latest) = history.latest() else {
        return Decision {
            desired: current,
            recommendation: current.clamp(policy.floor(), policy.ceiling()),
            reason: format!("no lag reading yet; keeping {}", tasks(current)),
            lag: None,
            persistent_lag: None,
            consumed_per_second: None,
            produced_per_second: None,
        };
    };
    let signals = signals(history, latest, policy);
    let mut parts = vec![describe_signals(&signals, policy)];

    let (wanted, why) = wanted(&signals, current, policy);
    parts.push(why);
    let (recommendation, bounds) = bound(wanted, &signals, policy);
    if !bounds.is_empty() {
        parts.push(bounds.join(", "));
    }

    let (target, held) = stabilize(history, recommendation, current, policy, now);
    let (limited, stepped) = limit_step(history, current, target, policy, now);
    // Bounds win over the step limits (a changed minTasks/maxTasks applies at once).
    let desired = limited.clamp(policy.floor(), policy.ceiling());
    parts.extend(held);
    parts.extend(stepped);
    parts.push(match desired.cmp(&current) {
        std::cmp::Ordering::Greater => format!("scaling up from {current} to {desired}"),
        std::cmp::Ordering::Less => format!("scaling down from {current} to {desired}"),
        std::cmp::Ordering::Equal => format!("keeping {}", tasks(current)),
    });
    Decision {
        desired,
        recommendation,
        reason: parts.join("; "),
        lag: Some(signals.lag),
        persistent_lag: (signals.persistent_lag > 0).then_some(signals.persistent_lag),
        consumed_per_second: signals.consumed,
        produced_per_second: signals.produced,
    }
}

/// `1 task`, `n tasks`.
pub fn tasks(n: i32) -> String {
    if n == 1 {
        "1 task".to_string()
    } else {
        format!("{n} tasks")
    }
}

fn age(now: Timestamp, then: Timestamp) -> Duration {
    let nanos = now.as_nanosecond().saturating_sub(then.as_nanosecond());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanosecond().saturating_sub(from.as_nanosecond())) as f64 / 1e9
}

/// The entry of `p`'s topic partition in `list`: at index `hint` when the partitions were
/// read in the same order (the usual case), else found by a search.
fn same_partition<'a>(
    list: &'a [PartitionOffsets],
    p: &PartitionOffsets,
    hint: usize,
) -> Option<&'a PartitionOffsets> {
    let same = |q: &&PartitionOffsets| q.topic == p.topic && q.partition == p.partition;
    list.get(hint)
        .filter(same)
        .or_else(|| list.iter().find(same))
}

fn partitions_of(sample: &Sample) -> &[PartitionOffsets] {
    match &sample.input {
        Input::Partitions(p) => p,
        Input::Backlog(_) => &[],
    }
}

fn signals(history: &History, latest: &Sample, policy: &Policy) -> Signals {
    match &latest.input {
        Input::Backlog(backlog) => Signals {
            lag: backlog
                .values()
                .fold(0i64, |sum, b| sum.saturating_add((*b).max(0))),
            ..Signals::default()
        },
        Input::Partitions(partitions) => {
            let mut s = Signals {
                partitions: partitions.len(),
                ..Signals::default()
            };
            let mut persistent = vec![false; partitions.len()];
            let mut counted: Vec<i64> = partitions.iter().map(PartitionOffsets::lag).collect();
            let scaled_down = last_scale_down(history, latest, policy);
            for (i, p) in partitions.iter().enumerate() {
                let lag = p.lag();
                if lag == 0 {
                    continue;
                }
                // A partition that did not move in the first reading after a scale-down
                // belonged to a removed task: what piled up since then is not load.
                let waiting_since = scaled_down.and_then(|(then, next)| {
                    let then = same_partition(partitions_of(then), p, i)?;
                    let next = same_partition(partitions_of(next), p, i)?;
                    (next.position() == then.position()).then_some(then.lag())
                });
                let stuck_for = stuck_for(history, p, i);
                if policy.exclude_persistent_lag && stuck_for >= policy.persistent_after {
                    persistent[i] = true;
                    s.persistent_lag = s.persistent_lag.saturating_add(lag);
                    s.persistent.push(format!(
                        "{} at offset {} for {} s",
                        p.name(),
                        p.position(),
                        stuck_for.as_secs()
                    ));
                } else if let Some(before) = waiting_since.filter(|before| *before < lag) {
                    s.reassigning_lag = s.reassigning_lag.saturating_add(lag - before);
                    s.reassigning += 1;
                    if before > 0 {
                        s.lag = s.lag.saturating_add(before);
                        s.partitions_with_lag += 1;
                    }
                    counted[i] = before;
                } else {
                    s.lag = s.lag.saturating_add(lag);
                    s.partitions_with_lag += 1;
                }
            }
            (s.consumed, s.produced) = rates(history, latest);
            s.capacity = history.capacity();
            let produced = partition_rates(history, latest);
            s.load = partitions
                .iter()
                .zip(persistent.iter().zip(&counted))
                .filter(|(_, (persistent, _))| !**persistent)
                .map(|(p, (_, lag))| {
                    let rate = produced
                        .get(&(p.topic.as_str(), p.partition))
                        .copied()
                        .unwrap_or(0.0);
                    (*lag, rate)
                })
                .collect();
            s
        }
    }
}

/// The reading on which the last scale-down was decided and the one after it, when the
/// scale-down is less than [`Policy::reassignment`] old and tasks still run: the partitions
/// of the removed tasks wait for their static memberships to expire.
fn last_scale_down<'a>(
    history: &'a History,
    latest: &Sample,
    policy: &Policy,
) -> Option<(&'a Sample, &'a Sample)> {
    if latest.tasks <= 0 {
        return None;
    }
    // Only while that scale-down is the last change, to a count above zero: after a
    // scale-up, or from zero, every partition has a running owner to wait for.
    let (at, _, _) = history
        .changes
        .back()
        .filter(|(_, from, to)| to < from && *to > 0)?;
    if age(latest.at, *at) >= policy.reassignment {
        return None;
    }
    let mut after = history.samples.iter().skip_while(|s| s.at < *at);
    Some((after.next()?, after.next()?))
}

/// How long tasks ran while `p`'s committed offset stayed where it is now with records
/// waiting. Time at zero tasks does not count, but does not end the run either: a stuck
/// partition does not wake a connector scaled to zero.
fn stuck_for(history: &History, p: &PartitionOffsets, hint: usize) -> Duration {
    let mut total = Duration::ZERO;
    let mut later: Option<&Sample> = None;
    for sample in history.samples.iter().rev() {
        let Some(same) = same_partition(partitions_of(sample), p, hint) else {
            break;
        };
        if same.position() != p.position() || same.lag() == 0 {
            break;
        }
        if let Some(later) = later {
            if sample.tasks > 0 {
                total += age(later.at, sample.at);
            }
        }
        later = Some(sample);
    }
    total
}

/// Records committed and produced per second over the [`RATE_WINDOW`]; consumption only
/// over samples taken at the current task count.
fn rates(history: &History, latest: &Sample) -> (Option<f64>, Option<f64>) {
    let window: Vec<&Sample> = history
        .samples
        .iter()
        .filter(|s| age(latest.at, s.at) <= RATE_WINDOW)
        .collect();
    let rate = |from: &Sample, f: &dyn Fn(&PartitionOffsets) -> i64| -> Option<f64> {
        let seconds = seconds_between(from.at, latest.at);
        if seconds < 1.0 {
            return None;
        }
        let earlier = partitions_of(from);
        let delta: i64 = partitions_of(latest)
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let q = same_partition(earlier, p, i)?;
                Some((f(p) - f(q)).max(0))
            })
            .fold(0i64, i64::saturating_add);
        Some(delta as f64 / seconds)
    };
    let produced = window.first().and_then(|from| rate(from, &|p| p.end));
    let same_count = window
        .iter()
        .rev()
        .take_while(|s| s.tasks == latest.tasks)
        .last();
    let consumed = same_count.and_then(|from| rate(from, &|p| p.position()));
    (consumed, produced)
}

/// Records produced per second to each partition over the [`RATE_WINDOW`].
fn partition_rates<'a>(history: &History, latest: &'a Sample) -> BTreeMap<(&'a str, i32), f64> {
    let Some(from) = history
        .samples
        .iter()
        .find(|s| age(latest.at, s.at) <= RATE_WINDOW)
    else {
        return BTreeMap::new();
    };
    let seconds = seconds_between(from.at, latest.at);
    if seconds < 1.0 {
        return BTreeMap::new();
    }
    let earlier = partitions_of(from);
    partitions_of(latest)
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let q = same_partition(earlier, p, i)?;
            Some((
                (p.topic.as_str(), p.partition),
                (p.end - q.end).max(0) as f64 / seconds,
            ))
        })
        .collect()
}

/// The fewest tasks of which none gets more work than `capacity` per second, when the
/// partitions are spread evenly by count (as Kafka's assignors do) and the busiest land
/// together: with `n` tasks one task may hold `ceil(partitions / n)` partitions. `None` when
/// even one partition per task is too much.
fn tasks_for_load(needs: &[f64], partitions: usize, capacity: f64) -> Option<i32> {
    let mut sorted: Vec<f64> = needs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let partitions = partitions.max(1);
    (1..=partitions)
        .find(|&n| {
            let per_task = partitions.div_ceil(n);
            sorted.iter().take(per_task).sum::<f64>() <= capacity
        })
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

fn describe_signals(s: &Signals, policy: &Policy) -> String {
    if policy.source {
        return format!("backlog {}", s.lag);
    }
    let mut text = format!(
        "lag {} on {} of {} partitions",
        s.lag, s.partitions_with_lag, s.partitions
    );
    let rate = |r: Option<f64>| r.map_or("unknown".to_string(), |r| format!("{r:.0}/s"));
    text.push_str(&format!(
        " (consuming {}, producing {})",
        rate(s.consumed),
        rate(s.produced)
    ));
    if s.reassigning > 0 {
        text.push_str(&format!(
            ", {} more piled up on {} partitions of removed tasks (they move to the remaining \
             tasks when the removed tasks' group memberships expire)",
            s.reassigning_lag, s.reassigning
        ));
    }
    if !s.persistent.is_empty() {
        let shown: Vec<&str> = s.persistent.iter().take(3).map(String::as_str).collect();
        let more = s.persistent.len().saturating_sub(shown.len());
        text.push_str(&format!(
            ", {} more left out as persistent ({}{})",
            s.persistent_lag,
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    text
}

/// The count the signals ask for, before bounds.
fn wanted(s: &Signals, current: i32, policy: &Policy) -> (i32, String) {
    if policy.min_tasks == 0 && !policy.source && s.lag <= policy.activation_lag {
        return (
            0,
            format!(
                "wants 0 tasks: lag at or below activationLag {}",
                policy.activation_lag
            ),
        );
    }
    match policy.target {
        Target::LagPerTask(per_task) => {
            let n = ceil_div(s.lag, per_task);
            (n, format!("target {per_task} per task: wants {}", tasks(n)))
        }
        Target::DrainSeconds(seconds) => {
            if let Some(capacity) = s.capacity.filter(|c| *c > 0.0) {
                let needs: Vec<f64> = s
                    .load
                    .iter()
                    .map(|(lag, rate)| rate + *lag as f64 / f64::from(seconds))
                    .collect();
                let needed: f64 = needs.iter().sum();
                let n = tasks_for_load(&needs, s.partitions, capacity)
                    .unwrap_or_else(|| i32::try_from(s.partitions).unwrap_or(i32::MAX));
                let n = if needed > 0.0 { n.max(1) } else { 0 };
                return (
                    n,
                    format!(
                        "keeping up and draining in {seconds} s needs {needed:.0}/s, a task \
                         commits {capacity:.0}/s: wants {}",
                        tasks(n)
                    ),
                );
            }
            if s.lag == 0 {
                return (0, format!("target drain in {seconds} s: wants 0 tasks"));
            }
            if current == 0 {
                let n = policy.min_tasks.max(1);
                return (
                    n,
                    format!(
                        "waking: wants {} until a consumption rate is measured",
                        tasks(n)
                    ),
                );
            }
            match s.consumed.filter(|r| *r > 0.0) {
                Some(rate) => {
                    let drain = s.lag as f64 / rate;
                    let n = saturating_ceil(f64::from(current) * drain / f64::from(seconds));
                    (
                        n,
                        format!(
                            "drains in {drain:.0} s at the current rate, target {seconds} s: wants {}",
                            tasks(n)
                        ),
                    )
                }
                None => (
                    current,
                    format!(
                        "target drain in {seconds} s: no consumption measured yet at {}, wants no change",
                        tasks(current)
                    ),
                ),
            }
        }
    }
}

fn saturating_ceil(x: f64) -> i32 {
    let n = x.ceil();
    if n >= f64::from(i32::MAX) {
        i32::MAX
    } else if n > 0.0 {
        n as i32
    } else {
        0
    }
}

fn ceil_div(a: i64, b: i64) -> i32 {
    if a <= 0 || b <= 0 {
        return 0;
    }
    let n = a / b + i64::from(a % b != 0);
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Applies the partition cap, the plugin's parallelism and `minTasks..=maxTasks`.
fn bound(wanted: i32, s: &Signals, policy: &Policy) -> (i32, Vec<String>) {
    let mut n = wanted;
    let mut notes = Vec::new();
    if !policy.source {
        let partitions = i32::try_from(s.partitions).unwrap_or(i32::MAX);
        let with_lag = i32::try_from(s.partitions_with_lag).unwrap_or(i32::MAX);
        // Keeping up with arriving records is work too, once the drain target sizes for it.
        let keeping_up = matches!(policy.target, Target::DrainSeconds(_)) && s.capacity.is_some();
        let busy = s
            .load
            .iter()
            .filter(|(lag, rate)| *lag > 0 || *rate > 0.0)
            .count();
        let busy = i32::try_from(busy).unwrap_or(i32::MAX);
        if policy.cap_at_partitions_with_lag && keeping_up && n > busy {
            n = busy;
            notes.push(format!(
                "capped at {busy} partitions with lag or arriving records"
            ));
        } else if policy.cap_at_partitions_with_lag && !keeping_up && n > with_lag {
            n = with_lag;
            notes.push(format!("capped at {with_lag} partitions with lag"));
        } else if n > partitions {
            n = partitions;
            notes.push(format!("capped at {partitions} partitions"));
        }
    }
    if let Some(max) = policy.plugin_max {
        if n > max {
            n = max;
            notes.push(format!("capped at the plugin's {}", tasks(max)));
        }
    }
    if n > policy.max_tasks {
        n = policy.max_tasks;
        notes.push(format!("capped at maxTasks {}", policy.max_tasks));
    }
    if n < policy.floor() {
        n = policy.floor();
        notes.push(if policy.source && policy.min_tasks == 0 {
            "at least 1 task (a source's backlog is only known from a running task)".to_string()
        } else {
            format!("at least minTasks {}", policy.min_tasks)
        });
    }
    if n == 0 && s.persistent_lag > 0 {
        // At zero a stuck partition would look healthy and never be retried.
        n = 1;
        notes.push("at least 1 task while lag is persistent".to_string());
    }
    (n, notes)
}

/// The HorizontalPodAutoscaler's stabilization: up to the lowest count wanted within the
/// scale-up window, down to the highest within the scale-down window.
fn stabilize(
    history: &History,
    recommendation: i32,
    current: i32,
    policy: &Policy,
    now: Timestamp,
) -> (i32, Option<String>) {
    let within = |window: Duration| {
        history
            .recommendations
            .iter()
            .filter(move |(at, _)| age(now, *at) < window)
            .map(|(_, n)| *n)
            .chain(std::iter::once(recommendation))
    };
    let up = within(policy.scale_up.stabilization)
        .min()
        .unwrap_or(recommendation);
    let down = within(policy.scale_down.stabilization)
        .max()
        .unwrap_or(recommendation);
    let up_window = policy.scale_up.stabilization.as_secs();
    let down_window = policy.scale_down.stabilization.as_secs();
    if up > current {
        let note = (up < recommendation)
            .then(|| format!("held at {up} by the scale-up stabilization window ({up_window} s)"));
        (up, note)
    } else if down < current {
        let note = (down > recommendation).then(|| {
            format!("held at {down} by the scale-down stabilization window ({down_window} s)")
        });
        (down, note)
    } else if recommendation > current {
        (
            current,
            Some(format!(
                "scale-up waits for the stabilization window ({up_window} s)"
            )),
        )
    } else if recommendation < current {
        (
            current,
            Some(format!(
                "scale-down waits for the stabilization window ({down_window} s)"
            )),
        )
    } else {
        (current, None)
    }
}

/// The step limits: within a period, the larger of `tasks` and `percent` % of the count at
/// the period's start.
fn limit_step(
    history: &History,
    current: i32,
    target: i32,
    policy: &Policy,
    now: Timestamp,
) -> (i32, Option<String>) {
    if target == current {
        return (current, None);
    }
    let up = target > current;
    let step = if up {
        &policy.scale_up
    } else {
        &policy.scale_down
    };
    let moved: i64 = history
        .changes
        .iter()
        .filter(|(at, _, _)| age(now, *at) < step.period)
        .map(|(_, from, to)| i64::from(to - from))
        .filter(|d| (*d > 0) == up)
        .map(i64::abs)
        .fold(0i64, i64::saturating_add);
    let current64 = i64::from(current);
    let start = if up {
        (current64 - moved).max(0)
    } else {
        current64 + moved
    };
    let by_percent = start * i64::from(step.percent) / 100;
    let allowed = i64::from(step.tasks).max(by_percent);
    let limit = if up {
        start + allowed
    } else {
        (start - allowed).max(0)
    };
    let limit = i32::try_from(limit).unwrap_or(if up { i32::MAX } else { 0 });
    let period = step.period.as_secs();
    if up && target > limit {
        let limit = limit.max(current);
        (
            limit,
            Some(format!(
                "scale-up limited to {} per {period} s (scaleUp)",
                tasks(i32::try_from(allowed).unwrap_or(i32::MAX))
            )),
        )
    } else if !up && target < limit {
        let limit = limit.min(current);
        (
            limit,
            Some(format!(
                "scale-down limited to {} per {period} s (scaleDown)",
                tasks(i32::try_from(allowed).unwrap_or(i32::MAX))
            )),
        )
    } else {
        (target, None)
    }
}

#[cfg(test)]
mod tests {
    use super::tasks_for_load;

    #[test]
    fn tasks_are_counted_for_the_busiest_share_of_partitions() {
        // 12 partitions at 400/s: 6 tasks of 2 partitions each do 800/s, within 1000/s.
        assert_eq!(tasks_for_load(&[400.0; 12], 12, 1000.0), Some(6));
        // At 625/s, two partitions are too much for one task: one task per partition.
        assert_eq!(tasks_for_load(&[625.0; 12], 12, 1000.0), Some(12));
        // One hot partition among idle ones: the hot one alone decides.
        let mut needs = vec![0.0; 6];
        needs[0] = 900.0;
        assert_eq!(tasks_for_load(&needs, 6, 1000.0), Some(1));
        // Two busy ones that may not share a task: only one partition per task guarantees it.
        needs[1] = 200.0;
        assert_eq!(tasks_for_load(&needs, 6, 1000.0), Some(6));
        assert_eq!(tasks_for_load(&[1500.0], 1, 1000.0), None);
    }
}
