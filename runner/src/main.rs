//! `ferry-runner`: runs one task of a KafkaConnector (`run`), or checks a connector file
//! offline (`validate`).

use clap::Parser;
use ferry_crds::contract;
use ferry_kafka::Credentials;
use ferry_runner::cli::{Cli, Command, LogFormat, ValidateArgs};
use ferry_runner::plugins::TaskShare;
use ferry_runner::task_config::{load, CheckMode};

/// Records pass through many short-lived buffers; mimalloc handles that pattern far better
/// than the system allocator. It also replaces `malloc` for the C libraries (the `override`
/// feature): librdkafka allocates each fetched message on its network thread and the task
/// frees it on another, which the system allocator serialises on its arena locks.
/// Transparent huge pages are left off (`no_thp`): with them every fresh 2 MiB region is
/// zeroed whole on its first touch, which cost more CPU than it saved and raised peak RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn validate(args: &ValidateArgs) -> i32 {
    let yaml = match std::fs::read_to_string(&args.file) {
        Ok(y) => y,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", args.file);
            return contract::EXIT_CONFIG_ERROR;
        }
    };
    let share = TaskShare {
        index: args.task_index,
        count: args.task_count,
    };
    match load(&yaml, share, &Credentials::default(), CheckMode::Offline) {
        Ok(cfg) => {
            println!(
                "{}: valid ({} {}/{})",
                args.file,
                if cfg.spec.sink.is_some() {
                    "sink"
                } else {
                    "source"
                },
                cfg.namespace,
                cfg.name
            );
            contract::EXIT_OK
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{}: {} problem(s)", args.file, errors.len());
            contract::EXIT_CONFIG_ERROR
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; a bad flag or env value is a configuration
            // error (never restarted in a loop).
            let code = if e.use_stderr() {
                contract::EXIT_CONFIG_ERROR
            } else {
                contract::EXIT_OK
            };
            if code != contract::EXIT_OK {
                ferry_runner::termination::write_termination_message(&e.to_string(), None);
            }
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Run(args) => {
            init_logging(args.log_format());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(ferry_runner::runtime::run(args))
        }
    };
    std::process::exit(code);
}
