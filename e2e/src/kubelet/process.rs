//! Container processes: start in a sandbox with a clean environment and the output going to
//! a log file, signal the whole process group, and wait for the exit.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use super::env::CommandLine;
use super::sandbox::Sandbox;

/// Starts `command` with exactly `env`, stdout and stderr appended to `log`, in its own
/// process group, inside `sandbox`.
pub fn spawn(
    command: &CommandLine,
    env: &[(String, String)],
    log: &Path,
    sandbox: Sandbox,
) -> std::io::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.arg0(command.argv.first().map(String::as_str).unwrap_or_default())
        .args(command.argv.iter().skip(1))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: `Sandbox::enter` only makes async-signal-safe system calls (see its docs).
    unsafe {
        cmd.pre_exec(move || sandbox.enter());
    }
    cmd.spawn()
}

/// Sends `signal` to the process group `pgid` (the container's main pid). A group that is
/// already gone is not an error.
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Stops a container: SIGTERM to its process group, then SIGKILL after `grace` if the main
/// process has not exited. Returns the exit status.
pub async fn stop(
    child: &mut tokio::process::Child,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    let pgid = child.id();
    if let Some(pgid) = pgid {
        signal_group(pgid, libc::SIGTERM);
    }
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            if let Some(pgid) = pgid {
                signal_group(pgid, libc::SIGKILL);
            }
            child.kill().await.ok();
            child.wait().await?
        }
    };
    if let Some(pgid) = pgid {
        signal_group(pgid, libc::SIGKILL);
    }
    Ok(status)
}

/// Exit code and signal of a finished process, as Kubernetes reports them
/// (a signal becomes exit code 128 + signal).
pub fn exit_code(status: ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(signal)) => (128 + signal, Some(signal)),
        (None, None) => (128, None),
    }
}

/// The last `max_lines` lines (at most `max_bytes`) of a log file, for
/// `FallbackToLogsOnError`.
pub fn log_tail(log: &Path, max_lines: usize, max_bytes: usize) -> String {
    let Ok(bytes) = std::fs::read(log) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max_bytes);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_become_exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), (3, None));
        assert_eq!(
            exit_code(ExitStatus::from_raw(libc::SIGKILL)),
            (137, Some(9))
        );
        assert_eq!(
            exit_code(ExitStatus::from_raw(libc::SIGTERM)),
            (143, Some(15))
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c.log");
        std::fs::write(&log, "one\ntwo\nthree\nfour\n").expect("write");
        assert_eq!(log_tail(&log, 2, 1024), "three\nfour");
        assert_eq!(log_tail(&log, 10, 5), "four");
        assert_eq!(log_tail(&dir.path().join("missing"), 10, 10), "");
    }
}
