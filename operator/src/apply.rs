//! Writes to the API server: server-side apply of the task ConfigMap, task pods and the
//! status subresource (field manager `ferry-operator`, forced), and pod deletions.

use ferry_crds::names::{API_GROUP, API_VERSION, FIELD_MANAGER, KIND};
use ferry_crds::{KafkaConnector, KafkaConnectorStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use crate::error::Error;

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the task ConfigMap.
pub async fn config_map(client: &Client, config_map: &ConfigMap) -> Result<(), Error> {
    let namespace = config_map.metadata.namespace.as_deref().unwrap_or_default();
    let name = config_map.metadata.name.as_deref().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &apply_params(), &Patch::Apply(config_map))
        .await
        .map_err(Error::kube(format!(
            "applying ConfigMap {namespace}/{name}"
        )))?;
    Ok(())
}

/// Creates (applies) a task pod.
pub async fn pod(client: &Client, pod: &Pod) -> Result<(), Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &apply_params(), &Patch::Apply(pod))
        .await
        .map_err(Error::kube(format!("applying pod {namespace}/{name}")))?;
    Ok(())
}

/// Deletes a pod if it is still the one with `uid`; a pod already gone or replaced is fine.
pub async fn delete_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("deleting pod {namespace}/{name}"))(e)),
    }
}

/// Applies the connector's status subresource.
pub async fn status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &KafkaConnectorStatus,
) -> Result<(), Error> {
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": format!("{API_GROUP}/{API_VERSION}"),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(Error::kube(format!(
            "writing the status of connector {namespace}/{name}"
        )))?;
    Ok(())
}
