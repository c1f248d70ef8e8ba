//! What every part of the kubelet shares: the API client, the configuration, and the
//! node-wide tables (image table, address pool, ConfigMap/Secret cache, tokens).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::events::Recorder;
use kube::Client;
use tokio::sync::watch;

use super::backoff::CrashLoopBackoff;
use super::env::ApiServerAddress;
use super::images::ImageTable;
use super::ip_pool::IpPool;
use super::objects::ObjectCache;
use super::token::TokenManager;

/// The kubelet's configuration (from its command line).
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// Name of the node this kubelet registers and runs pods for.
    pub node_name: String,
    /// Directory for pod directories (`<root>/pods/<uid>`).
    pub root_dir: PathBuf,
    /// CA bundle of the API server (fallback for `kube-root-ca.crt`).
    pub cluster_ca: PathBuf,
    /// API server address given to containers (`KUBERNETES_SERVICE_HOST`/`PORT`).
    pub api_server: ApiServerAddress,
    /// Image → executable table.
    pub images: ImageTable,
    /// Prefix of pod addresses (`127.0.1` gives `127.0.1.2` …).
    pub pod_ip_prefix: String,
    /// Address of the `/healthz` endpoint.
    pub health_addr: SocketAddr,
    /// Crash-loop backoff of restarted containers.
    pub backoff: CrashLoopBackoff,
    /// How often the node lease is renewed.
    pub lease_renew_interval: Duration,
}

/// Shared state of the running kubelet.
pub struct KubeletContext {
    /// Client with the kubelet's credentials.
    pub client: Client,
    /// Node name.
    pub node_name: String,
    /// The node's address (and the address of `hostNetwork` pods).
    pub host_ip: String,
    /// Directory for pod directories.
    pub root_dir: PathBuf,
    /// Image table.
    pub images: ImageTable,
    /// API server address for containers.
    pub api_server: ApiServerAddress,
    /// ConfigMap/Secret cache.
    pub objects: ObjectCache,
    /// Service-account tokens.
    pub tokens: TokenManager,
    /// Crash-loop backoff.
    pub backoff: CrashLoopBackoff,
    /// Pod addresses.
    pub ip_pool: Mutex<IpPool>,
    /// Node CPU in cores.
    pub node_cpu_cores: u64,
    /// Node memory in bytes.
    pub node_memory_bytes: u64,
    /// Publishes pod events (`kubectl describe pod`), as component `kubelet`.
    pub events: Recorder,
    /// Becomes `true` when the kubelet stops.
    pub shutdown: watch::Receiver<bool>,
}
