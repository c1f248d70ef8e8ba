//! Reads what a reconcile decides on: the connector, fresh from the API server (its status
//! holds the restart bookkeeping, so a cached copy could count a failure twice), and its
//! task pods.

use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::error::Error;
use crate::names::task_selector;

/// The connector and its task pods.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The connector as stored now.
    pub connector: KafkaConnector,
    /// Its task pods (label `ferry.rs/connector=<name>`).
    pub pods: Vec<Pod>,
}

/// Reads the connector and its pods; `None` when the connector is gone.
pub async fn dereference(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Snapshot>, Error> {
    let connectors: Api<KafkaConnector> = Api::namespaced(client.clone(), namespace);
    let Some(connector) = connectors
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading connector {namespace}/{name}")))?
    else {
        return Ok(None);
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods
        .list(&ListParams::default().labels(&task_selector(name)))
        .await
        .map_err(Error::kube(format!(
            "listing task pods of connector {namespace}/{name}"
        )))?
        .items;
    Ok(Some(Snapshot { connector, pods }))
}
