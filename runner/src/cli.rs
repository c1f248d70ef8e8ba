//! The command line: `ferry-runner run` and `ferry-runner validate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_crds::contract;

/// Ferry's runner: runs one task of a KafkaConnector, in a pod or standalone.
#[derive(Debug, Parser)]
#[command(name = "ferry-runner", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (default in a pod).
    Json,
    /// Human-readable lines (default in a terminal).
    Text,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one task of the connector until SIGTERM (or until a bounded source is done).
    Run(RunArgs),
    /// Check a connector file offline and print every problem with its field path.
    /// Exits 78 when there is any, 0 otherwise.
    Validate(ValidateArgs),
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The KafkaConnector YAML.
    #[arg(short = 'f', long = "file", env = contract::ENV_CONFIG_FILE,
          default_value_t = format!("{}/{}", contract::CONFIG_DIR, contract::CONFIG_FILE))]
    pub file: String,
    /// This task's index, `0..task-count`.
    #[arg(long, env = contract::ENV_TASK_INDEX, default_value_t = 0)]
    pub task_index: u32,
    /// The connector's task count.
    #[arg(long, env = contract::ENV_TASK_COUNT, default_value_t = 1)]
    pub task_count: u32,
    /// Address of the admin server (`/metrics`, `/healthz`, `/readyz`, `/progress`).
    #[arg(long, env = contract::ENV_ADMIN_ADDR, default_value = "127.0.0.1:8080")]
    pub admin_addr: SocketAddr,
    /// The desired-state file (`Running` or `Paused`), re-read every second. Default: the
    /// `state` file next to the connector file.
    #[arg(long, env = contract::ENV_STATE_FILE)]
    pub state_file: Option<PathBuf>,
    /// Log format. Default: json in a pod (POD_NAME set), text otherwise.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The KafkaConnector YAML.
    #[arg(short = 'f', long = "file")]
    pub file: String,
    /// Check as task `task-index` of `task-count` (e.g. for plugins with a task limit).
    #[arg(long, default_value_t = 0)]
    pub task_index: u32,
    /// The connector's task count.
    #[arg(long, default_value_t = 1)]
    pub task_count: u32,
}

impl RunArgs {
    /// The state file: the flag, else `state` next to the connector file.
    pub fn state_file(&self) -> PathBuf {
        self.state_file.clone().unwrap_or_else(|| {
            PathBuf::from(&self.file)
                .parent()
                .map(|d| d.join(contract::STATE_FILE))
                .unwrap_or_else(|| PathBuf::from(contract::STATE_FILE))
        })
    }

    /// The log format: the flag, else JSON in a pod.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(|| {
            if std::env::var_os(contract::ENV_POD_NAME).is_some() {
                LogFormat::Json
            } else {
                LogFormat::Text
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_and_validate() {
        let c = Cli::try_parse_from([
            "ferry-runner",
            "run",
            "-f",
            "/etc/x/c.yaml",
            "--task-index",
            "2",
            "--task-count",
            "3",
            "--admin-addr",
            "127.0.0.1:9999",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Run(r) = c.command else {
            panic!("not run")
        };
        assert_eq!(r.task_index, 2);
        assert_eq!(r.state_file(), PathBuf::from("/etc/x/state"));
        assert_eq!(r.log_format(), LogFormat::Json);
        let c = Cli::try_parse_from(["ferry-runner", "validate", "-f", "c.yaml"]).unwrap();
        assert!(matches!(c.command, Command::Validate(_)));
        assert!(Cli::try_parse_from(["ferry-runner", "validate"]).is_err());
    }
}
