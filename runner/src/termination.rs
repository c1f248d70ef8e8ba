//! The termination message: the last fatal error, where Kubernetes shows it
//! (`status.containerStatuses[].lastState.terminated.message`).

use std::path::PathBuf;

/// Kubernetes keeps at most 4096 bytes of a termination message.
const MAX_MESSAGE_BYTES: usize = 4096;

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

/// Cuts `message` to what Kubernetes keeps, on a character boundary.
pub fn truncate_message(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Writes the termination message; failures are logged, never fatal.
pub fn write_termination_message(message: &str) {
    let Some(path) = termination_log_path() else {
        return;
    };
    if let Err(e) = std::fs::write(&path, truncate_message(message)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the termination message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let s = "é".repeat(3000);
        let t = truncate_message(&s);
        assert!(t.len() <= MAX_MESSAGE_BYTES);
        assert!(t.chars().all(|c| c == 'é'));
        assert_eq!(truncate_message("short"), "short");
    }
}
