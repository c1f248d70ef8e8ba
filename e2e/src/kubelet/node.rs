//! Node registration, node status and the node Lease in `kube-node-lease`, which keep the
//! node lifecycle controller seeing this node as Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

/// Version this kubelet reports (the control plane's version).
pub const KUBELET_VERSION: &str = "v1.34.3";
/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease duration, as the kubelet sets it.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Pods the node accepts.
pub const MAX_PODS: u32 = 250;

/// Errors talking to the API about the node.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct NodeError {
    /// What the kubelet was doing.
    pub action: String,
    /// The API error.
    pub source: kube::Error,
}

/// Node resources and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// The node's address.
    pub host_ip: String,
    /// CPU cores.
    pub cpu_cores: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

impl NodeFacts {
    /// Reads CPU and memory of this machine (`/proc/meminfo`).
    pub fn detect(name: &str, host_ip: &str) -> Self {
        let cpu_cores = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(2);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_mem_total(&text))
            .unwrap_or(8 << 30);
        NodeFacts {
            name: name.to_string(),
            host_ip: host_ip.to_string(),
            cpu_cores,
            memory_bytes,
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The Node object this kubelet registers.
pub fn node_object(facts: &NodeFacts) -> Node {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", facts.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", std::env::consts::ARCH),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", std::env::consts::ARCH),
        ("ferry.rs/local-kubelet", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// The node status at `now`: Ready, no pressure, capacity and addresses.
pub fn node_status(facts: &NodeFacts, now: Timestamp, since: Timestamp) -> NodeStatus {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", facts.cpu_cores.to_string()),
        ("memory", format!("{}Ki", facts.memory_bytes / 1024)),
        ("pods", MAX_PODS.to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    NodeStatus {
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "the local kubelet is posting ready status",
            ),
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.name.clone(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            boot_id: String::new(),
            container_runtime_version: "ferry-local://0.1.0".into(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: String::new(),
            operating_system: "linux".into(),
            os_image: "Ferry local kubelet".into(),
            system_uuid: String::new(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// Creates the Node (or updates its labels) and posts its status.
pub async fn register(
    client: &Client,
    facts: &NodeFacts,
    since: Timestamp,
) -> Result<Node, NodeError> {
    let api: Api<Node> = Api::all(client.clone());
    let wanted = node_object(facts);
    let error = |action: &str| {
        let action = format!("{action} node {}", facts.name);
        move |source| NodeError { action, source }
    };
    match api.get_opt(&facts.name).await.map_err(error("reading"))? {
        None => {
            api.create(&PostParams::default(), &wanted)
                .await
                .map_err(error("registering"))?;
            info!(node = %facts.name, "node registered");
        }
        Some(_) => {
            let patch = serde_json::json!({"metadata": {"labels": wanted.metadata.labels}});
            api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(error("updating"))?;
            info!(node = %facts.name, "node already registered; taking it over");
        }
    }
    post_status(client, facts, since).await
}

/// Posts the node status (with a fresh heartbeat).
pub async fn post_status(
    client: &Client,
    facts: &NodeFacts,
    since: Timestamp,
) -> Result<Node, NodeError> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({"status": node_status(facts, Timestamp::now(), since)});
    api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError {
            action: format!("posting the status of node {}", facts.name),
            source,
        })
}

/// Renews (or creates) the node's Lease.
pub async fn renew_lease(client: &Client, node: &Node) -> Result<(), NodeError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let error = |action: &'static str| {
        let name = name.clone();
        move |source| NodeError {
            action: format!("{action} lease {LEASE_NAMESPACE}/{name}"),
            source,
        }
    };
    let exists = api
        .get_opt(&name)
        .await
        .map_err(error("reading"))?
        .is_some();
    if exists {
        let patch = serde_json::json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(error("renewing"))?;
    } else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid: node.metadata.uid.clone().unwrap_or_default(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                renew_time: Some(now),
                ..LeaseSpec::default()
            }),
        };
        api.create(&PostParams::default(), &lease)
            .await
            .map_err(error("creating"))?;
    }
    Ok(())
}

/// Keeps the lease renewed every `interval` and the node status fresh (every 3 renewals),
/// re-registering the node if someone deleted it, until `shutdown`.
pub async fn heartbeat(
    client: Client,
    facts: NodeFacts,
    mut node: Node,
    since: Timestamp,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick: u64 = 0;
    loop {
        if let Err(error) = renew_lease(&client, &node).await {
            warn!(%error, "lease renewal failed; retrying");
        }
        tick += 1;
        if tick.is_multiple_of(3) {
            match post_status(&client, &facts, since).await {
                Ok(updated) => node = updated,
                Err(NodeError {
                    source: kube::Error::Api(e),
                    ..
                }) if e.code == 404 => match register(&client, &facts, since).await {
                    Ok(registered) => node = registered,
                    Err(error) => warn!(%error, "re-registering the node failed"),
                },
                Err(error) => warn!(%error, "posting node status failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "ferry-local".into(),
            host_ip: "127.0.0.1".into(),
            cpu_cores: 2,
            memory_bytes: 24 << 30,
        }
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            parse_mem_total("MemTotal:       24683656 kB\nMemFree: 1 kB\n"),
            Some(24683656 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn status_is_ready_with_capacity_and_addresses() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let status = node_status(&facts(), now, now);
        let conditions = status.conditions.clone().unwrap_or_default();
        let get = |t: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone())
        };
        assert_eq!(get("Ready").as_deref(), Some("True"));
        assert_eq!(get("MemoryPressure").as_deref(), Some("False"));
        assert_eq!(get("DiskPressure").as_deref(), Some("False"));
        assert_eq!(get("PIDPressure").as_deref(), Some("False"));
        let capacity = status.capacity.clone().unwrap_or_default();
        assert_eq!(capacity.get("cpu"), Some(&Quantity("2".into())));
        assert_eq!(capacity.get("pods"), Some(&Quantity("250".into())));
        assert_eq!(capacity.get("memory"), Some(&Quantity("25165824Ki".into())));
        let addresses = status.addresses.unwrap_or_default();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "127.0.0.1");
        assert_eq!(addresses[1].type_, "Hostname");
        assert_eq!(
            status.node_info.map(|i| i.kubelet_version).as_deref(),
            Some("v1.34.3")
        );
        assert_eq!(
            node_object(&facts())
                .metadata
                .labels
                .unwrap_or_default()
                .get("kubernetes.io/hostname")
                .map(String::as_str),
            Some("ferry-local")
        );
    }
}
