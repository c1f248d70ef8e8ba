//! PostgreSQL from the benchmark through `psql` (no client library in the measured path):
//! one-shot statements, and a kept-open session for cheap polling of row counts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::error::BenchError;

/// Line `psql` echoes after each polled query, so the reader knows the answer is complete.
const END: &str = "__ferry_bench_end__";

/// Runs `sql` with `psql` against `url` (stops at the first error).
pub fn exec(url: &str, sql: &str) -> Result<String, BenchError> {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|source| BenchError::Spawn {
            program: "psql".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(BenchError::Command {
            command: format!("psql -c {sql:.200}"),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A `psql` session kept open for repeated one-value queries.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    /// Opens a session on `url`.
    pub fn open(url: &str) -> Result<Self, BenchError> {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-d", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| BenchError::Spawn {
                program: "psql".into(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Check("psql started without pipes".into()));
        };
        Ok(Session {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// The single integer `sql` returns (e.g. `SELECT count(*) FROM t`); an error (such as
    /// a table that does not exist yet) gives `None`.
    pub fn query_u64(&mut self, sql: &str) -> Result<Option<u64>, BenchError> {
        writeln!(self.stdin, "{sql};\n\\echo {END}")
            .and_then(|()| self.stdin.flush())
            .map_err(BenchError::io("cannot write to psql"))?;
        let mut value = None;
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(BenchError::io("cannot read from psql"))?;
            if n == 0 {
                return Err(BenchError::Check("psql ended".into()));
            }
            let line = line.trim();
            if line == END {
                return Ok(value);
            }
            if let Ok(v) = line.parse() {
                value = Some(v);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(host, port, database, user)` of a `postgres://user[:password]@host:port/database` URL.
pub fn url_parts(url: &str) -> Option<(String, u16, String, String)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (auth, rest) = rest.split_once('@')?;
    let user = auth.split(':').next()?.to_string();
    let (host_port, database) = rest.split_once('/')?;
    let database = database.split('?').next()?.to_string();
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    Some((host.to_string(), port.parse().ok()?, database, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_of_the_stack_url() {
        assert_eq!(
            url_parts("postgres://postgres@127.0.0.1:15432/postgres"),
            Some((
                "127.0.0.1".into(),
                15432,
                "postgres".into(),
                "postgres".into()
            ))
        );
        assert_eq!(
            url_parts("postgresql://u:secret@db/shop?sslmode=disable"),
            Some(("db".into(), 5432, "shop".into(), "u".into()))
        );
        assert_eq!(url_parts("mysql://x@y/z"), None);
    }
}
