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
    use super::super::sandbox::SandboxSpec;
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

    fn shell(script: &str) -> CommandLine {
        CommandLine {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
        }
    }

    fn sandbox(spec: SandboxSpec) -> Result<Sandbox, String> {
        Sandbox::new(spec).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn runs_in_a_private_mount_namespace_with_a_clean_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let volume = dir.path().join("volume");
        let target = dir.path().join("mnt");
        std::fs::create_dir_all(&volume).expect("volume dir");
        std::fs::write(volume.join("greeting"), "hello").expect("volume file");
        let mounts = vec![super::super::sandbox::Mount {
            source: volume.clone(),
            target: target.clone(),
            read_only: true,
        }];
        super::super::sandbox::prepare_mount_points(&mounts).expect("mount points");
        let spec = SandboxSpec {
            mounts,
            working_dir: dir.path().to_path_buf(),
            ..SandboxSpec::default()
        };
        let log = dir.path().join("out.log");
        let script = format!(
            "echo \"$(cat {t}/greeting) vars=$(env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort | tr '\\n' ,)\"; (echo x > {t}/new) 2>/dev/null && echo writable || echo read-only",
            t = target.display()
        );
        let env = vec![("ONLY".to_string(), "this".to_string())];
        match sandbox(spec) {
            Ok(sandbox) => {
                let mut child = spawn(&shell(&script), &env, &log, sandbox).expect("spawn");
                let status = child.wait().await.expect("wait");
                let out = std::fs::read_to_string(&log).expect("log");
                assert!(status.success(), "container failed: {out}");
                assert_eq!(out, "hello vars=ONLY=this,\nread-only\n");
                assert!(
                    std::fs::read_dir(&target).expect("target").next().is_none(),
                    "the bind mount leaked out of the container's namespace"
                );
            }
            // Without root the kubelet cannot build sandboxes, and says why.
            Err(message) => assert!(message.contains("not root"), "{message}"),
        }
    }

    #[tokio::test]
    async fn stop_sends_sigterm_to_the_group_then_sigkill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = || SandboxSpec {
            working_dir: dir.path().to_path_buf(),
            ..SandboxSpec::default()
        };
        let (Ok(graceful), Ok(stubborn)) = (sandbox(spec()), sandbox(spec())) else {
            assert!(
                super::super::sandbox::check_privileges().is_err(),
                "sandboxes fail only without root"
            );
            return;
        };
        let log = dir.path().join("out.log");
        let mut child = spawn(
            &shell("trap 'exit 7' TERM; while :; do sleep 0.1; done"),
            &[],
            &log,
            graceful,
        )
        .expect("spawn");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = stop(&mut child, Duration::from_secs(5))
            .await
            .expect("stop");
        assert_eq!(exit_code(status), (7, None));

        let mut child = spawn(
            &shell("trap '' TERM; while :; do sleep 0.1; done"),
            &[],
            &log,
            stubborn,
        )
        .expect("spawn");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let status = stop(&mut child, Duration::from_millis(500))
            .await
            .expect("stop");
        assert_eq!(exit_code(status), (137, Some(9)));
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "SIGKILL came before the grace period ended"
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
