//! The termination message: the last fatal error, where Kubernetes shows it
//! (`status.containerStatuses[].lastState.terminated.message`).

use std::path::PathBuf;

use ferry_crds::contract::{termination_message, ReplicationSlotReport};

/// The path of the termination-message file: `FERRY_TERMINATION_LOG`, else
/// `/dev/termination-log` when it exists (in a pod), else none (standalone).
pub fn termination_log_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var(ferry_crds::contract::ENV_TERMINATION_LOG) {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let default = PathBuf::from(ferry_crds::contract::DEFAULT_TERMINATION_LOG);
    default.exists().then_some(default)
}

/// Writes the termination message of a task stopped by `error`, with what the task knows of
/// its replication slot ([`ferry_crds::contract::termination_message`]); failures are
/// logged, never fatal.
pub fn write_termination_message(error: &str, slot: Option<&ReplicationSlotReport>) {
    let Some(path) = termination_log_path() else {
        return;
    };
    if let Err(e) = std::fs::write(&path, termination_message(error, slot)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the termination message");
    }
}
