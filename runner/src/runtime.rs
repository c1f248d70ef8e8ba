//! Running a task: the admin server, signals, the desired state, the pipeline, and the
//! termination message.

use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::config_error::ConfigError;
use crate::desired_state::watch_state;
use crate::metrics::TaskMetrics;
use crate::plugins::TaskShare;
use crate::task_config::{load, CheckMode, TaskConfig};
use crate::task_error::TaskError;
use crate::termination::write_termination_message;
use ferry_kafka::Credentials;

/// Reads and checks the connector file of `run`.
pub fn load_for_run(args: &RunArgs) -> Result<TaskConfig, TaskError> {
    let yaml = std::fs::read_to_string(&args.file).map_err(|e| {
        TaskError::Config(vec![ConfigError {
            field: "(file)".into(),
            message: format!("cannot read {}: {e}", args.file),
        }])
    })?;
    load(
        &yaml,
        TaskShare {
            index: args.task_index,
            count: args.task_count,
        },
        &Credentials::from_task_env(),
        CheckMode::Run,
    )
    .map_err(TaskError::Config)
}

/// Runs the task; returns the process exit code. The last fatal error is written to the
/// termination-message file.
pub async fn run(args: RunArgs) -> i32 {
    let mut metrics = None;
    let result = run_inner(&args, &mut metrics).await;
    match result {
        Ok(()) => ferry_crds::contract::EXIT_OK,
        Err(e) => {
            let message = e.to_string();
            tracing::error!(exit_code = e.exit_code(), "{message}");
            let slot = metrics.and_then(|m| m.replication_slot());
            write_termination_message(&message, slot.as_ref());
            e.exit_code()
        }
    }
}

/// Runs the task; `metrics_out` receives its metrics once they exist (the termination
/// message quotes the replication slot they hold).
async fn run_inner(
    args: &RunArgs,
    metrics_out: &mut Option<Arc<TaskMetrics>>,
) -> Result<(), TaskError> {
    let cfg = Arc::new(load_for_run(args)?);
    let metrics = TaskMetrics::new(&cfg.namespace, &cfg.name, cfg.share.index);
    *metrics_out = Some(metrics.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let admin = crate::admin::serve(
        args.admin_addr,
        metrics.clone(),
        cfg.stall_after,
        shutdown_rx.clone(),
    )
    .await
    .map_err(|e| {
        TaskError::Config(vec![ConfigError {
            field: "--admin-addr".into(),
            message: format!("cannot listen on {}: {e}", args.admin_addr),
        }])
    })?;
    tracing::info!(
        connector = %cfg.name,
        namespace = %cfg.namespace,
        task = cfg.share.index,
        tasks = cfg.share.count,
        admin = %args.admin_addr,
        "task starting"
    );
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; flushing and committing");
        let _ = shutdown_tx.send(true);
    });
    let desired = watch_state(args.state_file());
    let result = if cfg.spec.sink.is_some() {
        crate::sink::run(cfg.clone(), metrics.clone(), desired, shutdown_rx).await
    } else {
        crate::source::run(cfg.clone(), metrics.clone(), desired, shutdown_rx).await
    };
    admin.abort();
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
