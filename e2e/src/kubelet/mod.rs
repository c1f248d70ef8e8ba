//! The local kubelet: makes a real control plane run the pods bound to one node as local
//! processes. `e2e/stack` starts it as
//!
//! ```text
//! ferry-kubelet --kubeconfig FILE --node-name ferry-local --root-dir DIR \
//!   --cluster-ca FILE --api-server-host 127.0.0.1 --api-server-port PORT \
//!   --image ferry/runner=/abs/path/ferry-runner --image ferry/test-shell=/bin/sh ... \
//!   --pod-ip-prefix 127.0.1 --health-addr 127.0.0.1:10248 \
//!   [--crash-loop-backoff-seconds 10] [--crash-loop-backoff-max-seconds 300] [--lease-renew-seconds 10]
//! ```
//!
//! What a pod gets:
//! - an address `<prefix>.N` (kept across kubelet restarts, freed when the pod finishes);
//!   `hostNetwork` pods get 127.0.0.1;
//! - a directory `<root-dir>/pods/<uid>/` with `volumes/<name>/`, `containers/<name>/`
//!   (termination-message files) and `logs/<container>-<restart>.log` (stdout and stderr; the
//!   path is in the kubelet log and in the `Started` event);
//! - per container, a process with a clean environment (`PATH`, `HOME=/`, `HOSTNAME`,
//!   `KUBERNETES_SERVICE_*`, then `envFrom` and `env`), in its own process group and private
//!   mount namespace where every volume is bind-mounted at its `mountPath` (read-only when
//!   asked), the termination-message file at `terminationMessagePath`, `/` read-only with
//!   `readOnlyRootFilesystem`, running as `runAsUser`/`runAsGroup`. The kubelet must run as
//!   root for this; otherwise containers fail with a `StartError` saying so.
//!
//! Modules: [`node`] (registration, status, lease), [`pods`] (the pod watch),
//! [`pod_worker`] (one pod's lifecycle), [`process`] and [`sandbox`] (container processes),
//! [`volumes`], [`objects`] and [`token`] (volume contents), [`env`](mod@env) (environment and
//! command line), [`probes`], [`status`], [`backoff`], [`ip_pool`], [`images`], [`health`].

pub mod backoff;
pub mod context;
pub mod env;
pub mod health;
pub mod images;
pub mod ip_pool;
pub mod node;
pub mod objects;
pub mod pod_worker;
pub mod pods;
pub mod probes;
pub mod process;
pub mod sandbox;
pub mod status;
pub mod token;
pub mod volumes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

pub use context::{KubeletConfig, KubeletContext};

/// How long the kubelet waits for its pods' processes when it stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors that stop the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// Node registration failed.
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// The root directory cannot be created.
    #[error("cannot create the root directory {path}: {source}")]
    RootDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The health endpoint cannot be served.
    #[error("cannot serve /healthz on {addr}: {source}")]
    Health {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs the kubelet until `stop` resolves, then stops every process it started.
pub async fn run(
    client: Client,
    config: KubeletConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), KubeletError> {
    std::fs::create_dir_all(config.root_dir.join("pods")).map_err(|source| {
        KubeletError::RootDir {
            path: config.root_dir.clone(),
            source,
        }
    })?;
    if let Err(error) = sandbox::check_privileges() {
        warn!(%error, "containers will fail to start");
    }
    let (shutdown_tx, shutdown) = watch::channel(false);
    let healthy = Arc::new(AtomicBool::new(false));
    let listener_health = healthy.clone();
    let health_addr = config.health_addr;
    let health_shutdown = shutdown.clone();
    let health =
        tokio::spawn(
            async move { health::serve(health_addr, listener_health, health_shutdown).await },
        );

    let host_ip = "127.0.0.1".to_string();
    let facts = node::NodeFacts::detect(&config.node_name, &host_ip);
    let since = Timestamp::now();
    let node = node::register(&client, &facts, since).await?;
    node::renew_lease(&client, &node).await?;
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        facts.clone(),
        node,
        since,
        config.lease_renew_interval,
        shutdown.clone(),
    ));

    let ctx = Arc::new(KubeletContext {
        client: client.clone(),
        node_name: config.node_name.clone(),
        host_ip,
        root_dir: config.root_dir.clone(),
        images: config.images.clone(),
        api_server: config.api_server.clone(),
        objects: objects::ObjectCache::start(client.clone(), config.cluster_ca.clone()),
        tokens: token::TokenManager::new(client.clone()),
        backoff: config.backoff,
        ip_pool: Mutex::new(ip_pool::IpPool::new(&config.pod_ip_prefix)),
        node_cpu_cores: facts.cpu_cores,
        node_memory_bytes: facts.memory_bytes,
        events: kube::runtime::events::Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: "kubelet".into(),
                instance: Some(config.node_name.clone()),
            },
        ),
        shutdown: shutdown.clone(),
    });
    let synced = healthy.clone();
    let pods = tokio::spawn(pods::watch_pods(ctx, synced));

    tokio::select! {
        _ = stop => info!("stopping: terminating every container this kubelet started"),
        result = health => {
            let _ = shutdown_tx.send(true);
            return match result {
                Ok(Err(source)) => Err(KubeletError::Health { addr: health_addr, source }),
                _ => Ok(()),
            };
        }
    }
    healthy.store(false, Ordering::SeqCst);
    let _ = shutdown_tx.send(true);
    let workers = pods.await.unwrap_or_default();
    let all = futures::future::join_all(workers);
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, all).await.is_err() {
        warn!("some containers did not stop in time");
    }
    heartbeat.abort();
    Ok(())
}
