//! The desired run state of the task (`Running` or `Paused`), read from the state file the
//! operator keeps in the task's ConfigMap, polled every second (pausing never restarts a pod).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

/// What the connector's `state` asks of a running task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredState {
    /// Move records.
    Running,
    /// Stop reading input, keep everything already read, keep the process up.
    Paused,
}

/// Parses the state file's content. Unknown or empty content means `Running`, so a damaged
/// file never silently stops a connector; the caller logs it.
pub fn parse_state(content: &str) -> Result<DesiredState, String> {
    match content.trim() {
        "Running" | "" => Ok(DesiredState::Running),
        "Paused" => Ok(DesiredState::Paused),
        other => Err(format!(
            "unknown state {other:?} (expected Running or Paused)"
        )),
    }
}

/// Reads the state file once; a missing file means `Running` (standalone runs).
pub fn read_state(path: &Path) -> DesiredState {
    match std::fs::read_to_string(path) {
        Ok(content) => match parse_state(&content) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %path.display(), "{e}; running");
                DesiredState::Running
            }
        },
        Err(_) => DesiredState::Running,
    }
}

/// Polls the state file every second; the receiver sees each change.
pub fn watch_state(path: PathBuf) -> watch::Receiver<DesiredState> {
    let (tx, rx) = watch::channel(read_state(&path));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = read_state(&path);
            tx.send_if_modified(|cur| {
                if *cur != s {
                    tracing::info!(state = ?s, "desired state changed");
                    *cur = s;
                    true
                } else {
                    false
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_state_file() {
        assert_eq!(parse_state("Paused\n"), Ok(DesiredState::Paused));
        assert_eq!(parse_state("Running"), Ok(DesiredState::Running));
        assert_eq!(parse_state(""), Ok(DesiredState::Running));
        assert!(parse_state("Stopped").unwrap_err().contains("Stopped"));
    }
}
