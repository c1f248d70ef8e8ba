//! A process under measurement: started by the harness, its CPU time and peak memory taken
//! from the kernel when it ends (`wait4(2)`), so nothing it did is missed or sampled.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::procfs::{usage_of, Usage};

/// A running process the harness measures.
pub struct Measured {
    /// What runs (`ferry-runner`, `Kafka Connect`), for error messages.
    system: String,
    child: Child,
    started: Instant,
    log: PathBuf,
    ended: Option<Ended>,
}

/// How and when a measured process ended.
#[derive(Clone, Debug)]
pub struct Ended {
    /// `exit code N` or `signal N`.
    pub status: String,
    /// True when it exited with code 0.
    pub success: bool,
    /// CPU and peak memory over its whole life.
    pub usage: Usage,
}

impl Measured {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`. The clock
    /// of [`Measured::started`] starts just before the `fork`.
    pub fn spawn(system: &str, command: &mut Command, log: &Path) -> Result<Self, BenchError> {
        let out = File::create(log).map_err(BenchError::io(format!(
            "cannot create the log file {}",
            log.display()
        )))?;
        let err = out
            .try_clone()
            .map_err(BenchError::io(format!("cannot reopen {}", log.display())))?;
        Self::spawn_with(system, command.stdout(out).stderr(err), log)
    }

    /// Starts `command` with its stdout as the caller configured it (a pipe the caller
    /// reads) and stderr appended to `log`.
    pub fn spawn_piped(
        system: &str,
        command: &mut Command,
        log: &Path,
    ) -> Result<Self, BenchError> {
        let err = File::create(log).map_err(BenchError::io(format!(
            "cannot create the log file {}",
            log.display()
        )))?;
        Self::spawn_with(system, command.stdout(Stdio::piped()).stderr(err), log)
    }

    fn spawn_with(system: &str, command: &mut Command, log: &Path) -> Result<Self, BenchError> {
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| BenchError::Spawn {
                program: format!("{system} ({:?})", command.get_program()),
                source,
            })?;
        Ok(Measured {
            system: system.to_string(),
            child,
            started,
            log: log.to_path_buf(),
            ended: None,
        })
    }

    /// When the process was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's piped stdout, if [`Measured::spawn_piped`] started it.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How the process ended, if it did (never blocks).
    pub fn poll_ended(&mut self) -> Option<&Ended> {
        if self.ended.is_none() {
            self.ended = reap(self.child.id(), false);
        }
        self.ended.as_ref()
    }

    /// An [`BenchError::ExitedEarly`] if the process has ended.
    pub fn check_running(&mut self, delivered: u64, expected: u64) -> Result<(), BenchError> {
        let system = self.system.clone();
        let log = self.log.clone();
        match self.poll_ended() {
            None => Ok(()),
            Some(ended) => Err(BenchError::ExitedEarly {
                system,
                status: ended.status.clone(),
                delivered,
                expected,
                tail: log_tail(&log, 20),
                log,
            }),
        }
    }

    /// Kills the process (SIGKILL: the measurement is over, its shutdown is not measured)
    /// unless it already ended, and returns its whole-life CPU (from `wait4`) and peak RSS
    /// (VmHWM, read just before the kill).
    ///
    /// The peak comes from `/proc`, not from `ru_maxrss`: at `exec` the kernel folds the
    /// forked copy of the parent's memory into the child's `ru_maxrss`, so a child of a big
    /// parent would report the parent's size. A process that already ended reports
    /// `ru_maxrss`; callers that care read VmHWM before it ends.
    pub fn stop(mut self) -> Result<Usage, BenchError> {
        if let Some(ended) = self.poll_ended() {
            return Ok(ended.usage);
        }
        let peak = usage_of(self.child.id()).map(|u| u.peak_rss_kib);
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.ended = reap(self.child.id(), true);
        self.ended
            .as_ref()
            .map(|e| Usage {
                cpu_seconds: e.usage.cpu_seconds,
                peak_rss_kib: peak.unwrap_or(e.usage.peak_rss_kib),
            })
            .ok_or_else(|| {
                BenchError::Check(format!("cannot reap {} ({})", self.system, self.child.id()))
            })
    }

    /// Waits up to `timeout` for the process to end on its own.
    pub fn wait_ended(&mut self, timeout: Duration) -> Option<Ended> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(e) = self.poll_ended() {
                return Some(e.clone());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        if self.ended.is_none() {
            // SAFETY: as in `stop`: our own, unreaped child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
            self.ended = reap(self.child.id(), true);
        }
    }
}

/// `wait4` on our child: its exit status and resource usage, once it has ended.
fn reap(pid: u32, block: bool) -> Option<Ended> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: wait4 writes only into the two out-parameters we pass.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (text, success) = if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        (format!("exit code {code}"), code == 0)
    } else if libc::WIFSIGNALED(status) {
        (format!("signal {}", libc::WTERMSIG(status)), false)
    } else {
        (format!("wait status {status}"), false)
    };
    Some(Ended {
        status: text,
        success,
        usage: Usage {
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        },
    })
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
