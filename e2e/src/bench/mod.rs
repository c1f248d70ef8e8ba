//! `ferry-bench`: Ferry measured next to its peers on the local stack, in the same run, on
//! the same broker and the same data. See `e2e/bench/README.md` for the method.

pub mod databases;
pub mod delivery;
pub mod error;
pub mod failover;
pub mod kafka;
pub mod operator_scale;
pub mod process;
pub mod procfs;
pub mod psql;
pub mod report;
pub mod systems;
pub mod workloads;

pub use error::BenchError;
