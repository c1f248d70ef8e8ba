//! `ferry-operator`: runs KafkaConnector resources as task pods.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use ferry_crds::names::{FIELD_MANAGER, LABEL_MANAGED_BY};
use ferry_crds::KafkaConnector;
use ferry_operator::context::{Context, Settings};
use ferry_operator::leader::Election;
use ferry_operator::metrics::Metrics;
use ferry_operator::names::default_runner_image;
use ferry_operator::reconcile::{error_policy, reconcile};
use ferry_operator::server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use kube::{Api, Client};

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Ferry's Kubernetes operator: turns KafkaConnector resources into task pods.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "FERRY_NAMESPACE")]
    namespace: Option<String>,
    /// Runner image for connectors whose spec.image is not set.
    #[arg(long, env = "FERRY_RUNNER_IMAGE", default_value_t = default_runner_image())]
    runner_image: String,
    /// YAML file with the default pod template of task pods, in the format of a connector's
    /// spec.template.pod (node selector, tolerations, affinity, resources, labels,
    /// annotations, serviceAccountName, priorityClassName); each connector's own template
    /// wins field by field.
    #[arg(long, env = "FERRY_TASK_POD_TEMPLATE")]
    task_pod_template: Option<std::path::PathBuf>,
    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "FERRY_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Elect a leader with a Lease so several replicas can run (default: on inside a
    /// cluster, off outside).
    #[arg(long, env = "FERRY_LEADER_ELECTION")]
    leader_election: Option<bool>,
    /// Name of the leader election Lease.
    #[arg(long, env = "FERRY_LEASE_NAME", default_value = "ferry-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the operator's own namespace, POD_NAMESPACE, or the
    /// watched namespace, or `default`).
    #[arg(long, env = "FERRY_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds between reads of a running connector's task progress.
    #[arg(long, default_value_t = 15)]
    resync_seconds: u64,
    /// Seconds between two autoscaler decisions of a connector with spec.autoscaling.
    #[arg(long, default_value_t = 15)]
    autoscale_interval_seconds: u64,
    /// Milliseconds to wait for one task's /progress answer.
    #[arg(long, default_value_t = 2000)]
    progress_timeout_ms: u64,
    /// Connectors reconciled at the same time. A reconcile mostly waits for the API server
    /// and the tasks' `/progress`; with 1,000 connectors, 8 fell behind the resyncs.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Log format.
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }

    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new());

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics address {}", args.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    let router = server::router(metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });

    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let identity = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "ferry-operator".to_string());
    let identity = format!("{identity}-{}", std::process::id());
    let election = args.leader_election.unwrap_or(in_cluster).then(|| {
        Election::new(
            args.lease_name.clone(),
            args.lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .or_else(|| args.namespace.clone())
                .unwrap_or_else(|| "default".to_string()),
            identity.clone(),
            Duration::from_secs(args.lease_duration_seconds.max(3)),
        )
    });
    let mut held_since = None;
    if let Some(election) = &election {
        tracing::info!(lease = %election.name, namespace = %election.namespace, "waiting to become the leader");
        held_since = Some(election.acquire(&client).await);
    }
    metrics.set_leader(true);

    let settings = Settings {
        runner_image: args.runner_image.clone(),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        progress_timeout: Duration::from_millis(args.progress_timeout_ms.max(1)),
        read_progress: true,
        autoscale_interval: Duration::from_secs(args.autoscale_interval_seconds.max(1)),
        task_pod_template: match &args.task_pod_template {
            Some(path) => ferry_operator::task_template::load(path)?,
            None => Default::default(),
        },
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics,
        settings,
        Some(identity),
    ));
    let (connectors, pods, config_maps): (Api<KafkaConnector>, Api<Pod>, Api<ConfigMap>) =
        match &args.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("<all>"),
        runner_image = %args.runner_image, "starting the controller");
    let controller = Controller::new(connectors, watcher::Config::default())
        .owns(pods, owned.clone())
        .owns(config_maps, owned)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(connector = %object, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        });

    match &election {
        Some(election) => {
            tokio::select! {
                () = controller => {
                    election.release(&client).await;
                    tracing::info!("stopped");
                }
                () = election.keep(&client, held_since.unwrap_or_else(tokio::time::Instant::now)) => {
                    bail!("lost the leader election Lease {}/{}; exiting so that another replica leads", election.namespace, election.name);
                }
            }
        }
        None => {
            controller.await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
