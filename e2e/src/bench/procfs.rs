//! CPU time and memory of processes, from `/proc` and from `wait4(2)`.

/// CPU and memory a process used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (VmHWM, `ru_maxrss`), KiB.
    pub peak_rss_kib: u64,
}

/// User + system CPU seconds from the text of `/proc/<pid>/stat`, given the clock ticks per
/// second. The command name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat_cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15); rest[0] is field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// A `kB` field (`VmHWM:`, `VmRSS:`) of the text of `/proc/<pid>/status`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU and peak memory of a running process (all its threads), or `None` once it is gone.
pub fn usage_of(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_seconds: parse_stat_cpu_seconds(&stat, ticks_per_second())?,
        peak_rss_kib: parse_status_kib(&status, "VmHWM:")?,
    })
}

/// The 1-minute load average of the machine (`/proc/loadavg`), recorded next to each run.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Logical CPUs and total memory (MiB) of this machine, from `/proc`.
pub fn machine() -> (usize, u64) {
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_status_kib(&t, "MemTotal:"))
        .unwrap_or(0)
        / 1024;
    (cpus, mem)
}

/// The CPU model name of this machine, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_fields_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (java (main) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 30 0";
        assert_eq!(parse_stat_cpu_seconds(stat, 100.0), Some(3.25));
    }

    #[test]
    fn a_truncated_stat_gives_nothing() {
        assert_eq!(parse_stat_cpu_seconds("12 (x) S 1 2", 100.0), None);
        assert_eq!(parse_stat_cpu_seconds("garbage", 100.0), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status =
            "Name:\tferry-runner\nVmPeak:\t  90000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51234));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(40000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }
}
