//! Errors of the benchmark harness.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::HarnessError;

/// Everything that can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing, naming the path.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A Kafka client call failed.
    #[error("Kafka: {what}: {source}")]
    Kafka {
        /// What the harness was doing, naming the topic.
        what: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {what}: {source}")]
    Kube {
        /// What the harness was doing, naming the object.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// The local stack is not usable.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// A measured process ended before it delivered every record.
    #[error("{system} exited ({status}) after delivering {delivered} of {expected} records; its log: {log}\n{tail}")]
    ExitedEarly {
        /// The system under test.
        system: String,
        /// How it ended (`exit code N` or `signal N`).
        status: String,
        /// Records delivered when it ended.
        delivered: u64,
        /// Records expected.
        expected: u64,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited (with the progress reached).
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
    /// A helper command (psql, cargo, e2e/stack) failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote on stderr.
        stderr: String,
    },
    /// A result the harness checks is wrong (a lost record, a changed pod).
    #[error("{0}")]
    Check(String),
}

impl BenchError {
    /// An [`BenchError::Io`] naming what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }

    /// A [`BenchError::Kafka`] naming what was being done.
    pub fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> BenchError {
        let what = what.into();
        move |source| BenchError::Kafka { what, source }
    }

    /// A [`BenchError::Kube`] naming what was being done.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Kube { what, source }
    }
}
