//! Names shared by the operator, the runner and the tools: the API group, the field manager,
//! the labels and annotations on task pods, and the names of the objects the operator creates.

/// API group of the `KafkaConnector` resource.
pub const API_GROUP: &str = "ferry.rs";
/// API version of the `KafkaConnector` resource.
pub const API_VERSION: &str = "v1alpha1";
/// Kind of the connector resource.
pub const KIND: &str = "KafkaConnector";
/// Resource name (plural) of the connector resource in the API's paths.
pub const PLURAL: &str = "kafkaconnectors";
/// Name of the `CustomResourceDefinition` (`<plural>.<group>`).
pub const CRD_NAME: &str = "kafkaconnectors.ferry.rs";

/// Field manager of every server-side apply the operator makes (objects and status).
pub const FIELD_MANAGER: &str = "ferry-operator";

/// Label `app.kubernetes.io/name`: the application a task pod runs, [`RUNNER_APP_NAME`].
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Label `app.kubernetes.io/instance`: the connector's name.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Label `app.kubernetes.io/managed-by` on objects the operator creates: [`FIELD_MANAGER`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label `ferry.rs/connector`: the connector's name (the `/scale` selector uses it).
pub const LABEL_CONNECTOR: &str = "ferry.rs/connector";
/// Label `ferry.rs/task`: the task index, `0..n-1`.
pub const LABEL_TASK: &str = "ferry.rs/task";
/// Value of [`LABEL_NAME`] on task pods.
pub const RUNNER_APP_NAME: &str = "ferry-runner";

/// Annotation on task pods: a hash of the task configuration. A pod whose hash differs from
/// the connector's current one is replaced.
pub const ANNOTATION_CONFIG_HASH: &str = "ferry.rs/config-hash";

/// Finalizer the operator sets when `spec.offsets.deleteOnRemoval` is true: the connector's
/// offsets are deleted before the resource goes away.
pub const FINALIZER_DELETE_OFFSETS: &str = "ferry.rs/delete-offsets";

/// Longest connector name: `<name>-task-<index>` must stay a valid DNS label (63 characters)
/// for up to 1000 tasks, and the name is a label value.
pub const MAX_CONNECTOR_NAME_LENGTH: usize = 52;

/// Name of the pod running task `index` of a connector: `<connector>-task-<index>`.
pub fn task_pod_name(connector: &str, index: i32) -> String {
    format!("{connector}-task-{index}")
}

/// Name of the ConfigMap holding a connector's task configuration: `<connector>-task-config`.
pub fn task_config_map_name(connector: &str) -> String {
    format!("{connector}-task-config")
}

/// Label selector of a connector's task pods, as published in `status.selector`:
/// `ferry.rs/connector=<connector>`.
pub fn task_selector(connector: &str) -> String {
    format!("{LABEL_CONNECTOR}={connector}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        assert_eq!(task_pod_name("orders", 3), "orders-task-3");
        assert_eq!(task_config_map_name("orders"), "orders-task-config");
        assert_eq!(task_selector("orders"), "ferry.rs/connector=orders");
    }

    #[test]
    fn longest_name_keeps_pod_names_dns_labels() {
        let name = "a".repeat(MAX_CONNECTOR_NAME_LENGTH);
        assert!(task_pod_name(&name, 999).len() <= 63);
    }
}
