//! `ferry-kubelet`: the local kubelet of Ferry's test stack. Registers a node with a real
//! control plane and runs the pods bound to it as local processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferry_e2e::kubelet::backoff::CrashLoopBackoff;
use ferry_e2e::kubelet::env::ApiServerAddress;
use ferry_e2e::kubelet::images::ImageTable;
use ferry_e2e::kubelet::{self, KubeletConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Runs the pods bound to one node of a real control plane as local processes.
#[derive(Debug, Parser)]
#[command(name = "ferry-kubelet", version)]
struct Args {
    /// Kubeconfig with the kubelet's credentials.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Name of the node to register and run pods for.
    #[arg(long, default_value = "ferry-local")]
    node_name: String,
    /// Directory for pod directories, volumes and container logs (`<dir>/pods/<uid>`).
    #[arg(long)]
    root_dir: PathBuf,
    /// CA certificate of the API server (used for `kube-root-ca.crt` until the
    /// controller-manager has published it in a namespace).
    #[arg(long)]
    cluster_ca: PathBuf,
    /// API server host given to containers as KUBERNETES_SERVICE_HOST.
    #[arg(long, default_value = "127.0.0.1")]
    api_server_host: String,
    /// API server port given to containers as KUBERNETES_SERVICE_PORT.
    #[arg(long)]
    api_server_port: u16,
    /// Image to executable mapping, `NAME=/abs/path` (repeatable; tags and digests of pod
    /// images are ignored), e.g. `ferry/runner=/repo/target/debug/ferry-runner`.
    #[arg(long = "image", value_name = "NAME=PATH")]
    images: Vec<String>,
    /// First three octets of pod addresses: pods get `<prefix>.2` … `<prefix>.254`.
    #[arg(long, default_value = "127.0.1")]
    pod_ip_prefix: String,
    /// Address of the `/healthz` endpoint.
    #[arg(long, default_value = "127.0.0.1:10248")]
    health_addr: SocketAddr,
    /// Crash-loop backoff before the second restart of a container, in seconds; doubles per
    /// restart up to --crash-loop-backoff-max-seconds (the first restart is immediate).
    #[arg(long, default_value_t = 10)]
    crash_loop_backoff_seconds: u64,
    /// Upper bound of the crash-loop backoff, in seconds.
    #[arg(long, default_value_t = 300)]
    crash_loop_backoff_max_seconds: u64,
    /// How often the node Lease is renewed, in seconds.
    #[arg(long, default_value_t = 10)]
    lease_renew_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let images = ImageTable::parse(args.images.iter().map(String::as_str))?;
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let config = KubeletConfig {
        node_name: args.node_name,
        root_dir: args.root_dir,
        cluster_ca: args.cluster_ca,
        api_server: ApiServerAddress {
            host: args.api_server_host,
            port: args.api_server_port,
        },
        images,
        pod_ip_prefix: args.pod_ip_prefix,
        health_addr: args.health_addr,
        backoff: CrashLoopBackoff {
            base: Duration::from_secs(args.crash_loop_backoff_seconds),
            max: Duration::from_secs(
                args.crash_loop_backoff_max_seconds
                    .max(args.crash_loop_backoff_seconds),
            ),
        },
        lease_renew_interval: Duration::from_secs(args.lease_renew_seconds.max(1)),
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    kubelet::run(client, config, stop).await?;
    Ok(())
}
