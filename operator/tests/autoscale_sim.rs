//! The autoscaler's decision function driven by simulated sink connectors over hours of
//! lag traces (bursty, diurnal, one stuck partition): every second records are produced and
//! consumed, every 15 seconds the autoscaler reads the committed and log-end offsets and
//! decides, as the operator does. The tests assert bounds and the absence of flapping (the
//! number of times the scaling direction flips).

use ferry_crds::connector::AutoscalingSpec;
use ferry_operator::autoscale::{decide, History, Input, PartitionOffsets, Policy, Sample};
use k8s_openapi::jiff::Timestamp;

/// Seconds between two evaluations.
const INTERVAL: u64 = 15;
/// Seconds a new task needs before it consumes (pod start, group join).
const STARTUP: u64 = 10;
/// Records per second one task consumes at most.
const TASK_RATE: f64 = 1000.0;
/// Seconds the partitions of a removed task stay with its departed static group member
/// (the runner's `session.timeout.ms`).
const SESSION_TIMEOUT: u64 = 45;

struct Connector {
    partitions: usize,
    /// Log-end offset of each partition (fractional records accumulate).
    end: Vec<f64>,
    /// Committed offset of each partition.
    committed: Vec<f64>,
    /// Partitions that never move (a failing record).
    stuck: Vec<usize>,
    /// Seconds each running task has run.
    tasks: Vec<u64>,
    /// Per partition, the second until which it stays with a removed task's static
    /// membership and nobody consumes it.
    orphaned_until: Vec<u64>,
    /// Seconds since the start.
    now: u64,
}

impl Connector {
    fn new(partitions: usize, tasks: usize) -> Self {
        Connector {
            partitions,
            end: vec![0.0; partitions],
            committed: vec![0.0; partitions],
            stuck: Vec::new(),
            tasks: vec![STARTUP; tasks],
            orphaned_until: vec![0; partitions],
            now: 0,
        }
    }

    /// One second: `produced` records spread over the partitions, then each started task
    /// consumes its share of its partitions (partition `p` belongs to task `p % tasks`).
    fn tick(&mut self, produced: f64) {
        self.now += 1;
        for end in &mut self.end {
            *end += produced / self.partitions as f64;
        }
        let n = self.tasks.len();
        for (task, age) in self.tasks.iter_mut().enumerate() {
            *age += 1;
            if *age <= STARTUP {
                continue;
            }
            let mine: Vec<usize> = (0..self.partitions).filter(|p| p % n == task).collect();
            let mut budget = TASK_RATE;
            // Drain the partitions in turn; what one cannot use goes to the next.
            let now = self.now;
            let mut open: Vec<usize> = mine
                .into_iter()
                .filter(|p| !self.stuck.contains(p) && self.orphaned_until[*p] <= now)
                .collect();
            while budget > 0.01 && !open.is_empty() {
                let share = budget / open.len() as f64;
                budget = 0.0;
                open.retain(|&p| {
                    let waiting = self.end[p] - self.committed[p];
                    let take = waiting.min(share);
                    self.committed[p] += take;
                    budget += share - take;
                    waiting - take > 0.01
                });
            }
        }
    }

    fn resize(&mut self, count: i32) {
        let count = usize::try_from(count).unwrap_or(0);
        let before = self.tasks.len();
        if count < before {
            for p in 0..self.partitions {
                if p % before >= count {
                    self.orphaned_until[p] = self.now + SESSION_TIMEOUT;
                }
            }
        }
        self.tasks.truncate(count);
        while self.tasks.len() < count {
            self.tasks.push(0);
        }
    }

    fn lag(&self) -> f64 {
        self.end
            .iter()
            .zip(&self.committed)
            .map(|(e, c)| e - c)
            .sum()
    }

    fn sample(&self, at: Timestamp) -> Sample {
        Sample {
            at,
            tasks: self.tasks.len() as i32,
            input: Input::Partitions(
                (0..self.partitions)
                    .map(|p| PartitionOffsets {
                        topic: "events".into(),
                        partition: p as i32,
                        committed: Some(self.committed[p].floor() as i64),
                        start: 0,
                        end: self.end[p].floor() as i64,
                    })
                    .collect(),
            ),
        }
    }
}

/// What a run produced: the task count after every evaluation, and the lag then.
struct Trace {
    counts: Vec<i32>,
    lags: Vec<f64>,
    reasons: Vec<String>,
}

impl Trace {
    /// How often the direction of scaling flipped (up then down, or down then up).
    fn flips(&self) -> usize {
        let mut last = 0i32;
        let mut flips = 0;
        for pair in self.counts.windows(2) {
            let direction = (pair[1] - pair[0]).signum();
            if direction != 0 {
                if last != 0 && direction != last {
                    flips += 1;
                }
                last = direction;
            }
        }
        flips
    }

    fn changes(&self) -> usize {
        self.counts.windows(2).filter(|p| p[0] != p[1]).count()
    }
}

fn policy(yaml: &str) -> Policy {
    let spec: AutoscalingSpec = serde_yaml::from_str(yaml).expect("an autoscaling spec");
    Policy::from_spec(&spec, None, false)
}

/// Runs `connector` for `seconds` under `production(second)` records per second.
fn simulate(
    policy: &Policy,
    connector: &mut Connector,
    seconds: u64,
    production: &dyn Fn(u64) -> f64,
) -> Trace {
    let start = Timestamp::from_second(1_795_000_000).expect("a timestamp");
    let mut history = History::default();
    let mut trace = Trace {
        counts: vec![connector.tasks.len() as i32],
        lags: vec![0.0],
        reasons: vec![String::new()],
    };
    for second in 1..=seconds {
        connector.tick(production(second));
        if second % INTERVAL == 0 {
            let now = start
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(second as i64))
                .expect("a timestamp");
            let current = connector.tasks.len() as i32;
            history.observe(connector.sample(now), policy);
            let decision = decide(&history, current, policy, now);
            history.record(now, current, &decision);
            connector.resize(decision.desired);
            trace.counts.push(decision.desired);
            trace.lags.push(connector.lag());
            trace.reasons.push(decision.reason);
        }
    }
    trace
}

/// A deterministic jitter in `[-1, 1]`.
fn jitter(second: u64) -> f64 {
    let x = second
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) % 2001) as f64 / 1000.0 - 1.0
}

#[test]
fn bursts_scale_up_fast_and_down_once_per_burst() {
    let p = policy("{minTasks: 1, maxTasks: 12, lagPerTask: 5000}");
    let mut c = Connector::new(12, 1);
    // 3 hours: 500 records/s, and every 15 minutes a minute at 20000 records/s.
    let bursts = 12;
    let production = |s: u64| {
        if s % 900 < 60 {
            20_000.0
        } else {
            500.0 * (1.0 + 0.2 * jitter(s))
        }
    };
    let trace = simulate(&p, &mut c, 900 * bursts, &production);
    assert!(trace.counts.iter().all(|&n| (1..=12).contains(&n)));
    assert_eq!(
        *trace.counts.iter().max().unwrap(),
        12,
        "bursts reach maxTasks"
    );
    assert!(
        trace.flips() <= 2 * bursts as usize,
        "{} direction flips for {bursts} bursts: {:?}",
        trace.flips(),
        trace.counts
    );
    // Between bursts everything drains, and after the 5-minute window the count comes down
    // one task a minute (the default scaleDown), a third of the way or more by the next burst.
    for cycle in 1..bursts as usize {
        let before_next = cycle * 60 - 1; // the evaluation just before the next burst
        assert!(
            trace.lags[before_next] < 5000.0,
            "lag {} before burst {cycle}",
            trace.lags[before_next]
        );
        assert!(
            trace.counts[before_next] <= 8,
            "cycle {cycle}: {:?}",
            trace.counts
        );
    }
    // Scale-up starts within one evaluation of a burst and is stepwise (+4 or +100 %).
    assert_eq!(
        &trace.counts[1..5],
        &[5, 10, 12, 12],
        "{:?}",
        &trace.counts[..8]
    );
}

#[test]
fn a_diurnal_load_is_followed_without_flapping() {
    let p = policy("{minTasks: 1, maxTasks: 12, drainSeconds: 60}");
    let mut c = Connector::new(12, 1);
    // Three compressed "days" of two hours: 500 to 7500 records/s, ±10 % noise.
    let day = 7200.0;
    let production = |s: u64| {
        let phase = (s as f64 / day) * std::f64::consts::TAU;
        (4000.0 - 3500.0 * phase.cos()) * (1.0 + 0.1 * jitter(s))
    };
    let trace = simulate(&p, &mut c, 3 * 7200, &production);
    assert!(trace.counts.iter().all(|&n| (1..=12).contains(&n)));
    let peak = *trace.counts.iter().max().unwrap();
    assert!(
        (8..=12).contains(&peak),
        "7500 records/s need 8 tasks of 1000/s; peak {peak}"
    );
    // One rise and one fall per day, a few more steps from the noise at most.
    assert!(
        trace.flips() <= 2 * 3 + 4,
        "{} direction flips in 3 days: {:?}",
        trace.flips(),
        trace.counts
    );
    // The lag never exceeds what a minute and a half of peak production would leave.
    let worst = trace.lags.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 7500.0 * 90.0, "lag reached {worst}");
    println!(
        "diurnal: {} changes, {} flips, peak {peak} tasks, worst lag {worst:.0}",
        trace.changes(),
        trace.flips()
    );
}

#[test]
fn a_stuck_partition_does_not_cause_endless_scale_up() {
    let yaml = "{minTasks: 1, maxTasks: 12, lagPerTask: 1000, persistentLagSeconds: 120, \
                capAtPartitionsWithLag: false}";
    let production = |_: u64| 600.0;
    let run = |yaml: &str| {
        let mut c = Connector::new(6, 1);
        c.stuck = vec![0];
        let trace = simulate(&policy(yaml), &mut c, 3600, &production);
        (trace, c)
    };

    let (trace, _) = run(yaml);
    // After the persistent-lag window (and the scale-down window) the count comes back down.
    let settled = &trace.counts[40..];
    assert!(
        settled.iter().all(|&n| n <= 2),
        "the stuck partition's lag drives the count: {:?}",
        trace.counts
    );
    assert!(
        trace.flips() <= 2,
        "{} flips: {:?}",
        trace.flips(),
        trace.counts
    );
    let reason = trace.reasons.last().unwrap();
    assert!(
        reason.contains("left out as persistent (events[0] at offset 0 for"),
        "{reason}"
    );

    // Counting the stuck partition's lag would keep every partition's task busy for nothing.
    let (counted, _) =
        run(&yaml.replace("persistentLagSeconds: 120", "excludePersistentLag: false"));
    assert_eq!(*counted.counts.last().unwrap(), 6, "{:?}", counted.counts);
}
