//! Ferry's local test stack: the local kubelet that runs pods as local processes, and the
//! harness the end-to-end tests use to talk to the stack.

pub mod bench;
pub mod harness;
pub mod kubelet;
