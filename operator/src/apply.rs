//! The apply step: server-side apply of the task ConfigMap and task pods (field manager
//! `ferry-operator`, forced), and pod deletions. The status is written by
//! [`crate::status_writer`].

use ferry_crds::names::FIELD_MANAGER;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use crate::build::{self, TaskInputs};
use crate::context::Context;
use crate::error::Error;
use crate::plan::{DeleteReason, Plan};

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the plan: the ConfigMap first (new pods mount it), then the missing pods, then the
/// deletions (orphans, stale pods and failed pods whose restart is due).
pub async fn changes(
    ctx: &Context,
    inputs: &TaskInputs,
    plan: &Plan,
    hash: &str,
) -> Result<(), Error> {
    let client = &ctx.client;
    config_map(client, &build::config_map(inputs)).await?;
    for (index, restarts) in &plan.create {
        pod(client, &build::task_pod(inputs, *index, hash, *restarts)).await?;
    }
    let mut restarted = 0;
    for deletion in &plan.delete {
        let grace = (deletion.reason == DeleteReason::NodeLost).then_some(0);
        delete_pod_with_grace(
            client,
            &inputs.namespace,
            &deletion.pod,
            &deletion.uid,
            grace,
        )
        .await?;
        if matches!(
            deletion.reason,
            DeleteReason::Restart | DeleteReason::Stalled
        ) {
            restarted += 1;
        }
        tracing::info!(pod = %deletion.pod, reason = ?deletion.reason,
            pod_hash = deletion.hash.as_deref().unwrap_or("none"), current_hash = %hash,
            "deleting task pod");
    }
    if restarted > 0 {
        ctx.metrics.task_restarted(restarted);
    }
    Ok(())
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
    delete_pod_with_grace(client, namespace, name, uid, None).await
}

/// [`delete_pod`] with a grace period in seconds (`Some(0)`: at once, without the kubelet's
/// confirmation; `None`: the pod's own).
pub async fn delete_pod_with_grace(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    grace_period_seconds: Option<u32>,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds,
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
