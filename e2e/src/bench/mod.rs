//! `ferry-bench`: Ferry measured next to its peers on the local stack, in the same run, on
//! the same broker and the same data. See `e2e/bench/README.md` for the method.

pub mod error;
pub mod kafka;
pub mod process;
pub mod procfs;
pub mod report;
pub mod systems;
pub mod workloads;

pub use error::BenchError;
