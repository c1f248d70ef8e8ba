//! The pure build steps' view of a connector ([`TaskInputs`]), read from the typed resource.

use std::time::Duration;

use ferry_crds::connector::{ConnectorState, SecretKeyRef};
use ferry_crds::names::{API_GROUP, API_VERSION, KIND};
use ferry_crds::KafkaConnector;
use kube::Resource;

use crate::build::{KafkaSecrets, RunState, SecretKey, SlotIdentity, TaskInputs};
use crate::context::Settings;
use crate::error::Error;
use crate::restart::Backoff;
use crate::task_template;
use crate::validate::Validated;

/// Spec fields that change without replacing task pods, left out of `connector.yaml`.
/// `offsets` is the operator's alone: a reset stops and starts the tasks itself, and a
/// refused one leaves them running.
const FIELDS_NOT_IN_TASK_CONFIG: &[&str] = &["tasks", "autoscaling", "state", "offsets"];

/// The inputs step: the inputs of a validated connector running `tasks` tasks, its pod
/// template completed by the operator's default ([`crate::task_template::merged`]).
pub fn for_reconcile(
    validated: &Validated<'_>,
    tasks: i32,
    settings: &Settings,
) -> Result<TaskInputs, Error> {
    let mut inputs = task_inputs(validated.connector, tasks, &settings.runner_image)?;
    inputs.pod = task_template::merged(&settings.task_pod_template, &inputs.pod);
    Ok(inputs)
}

/// Reads the inputs of the build steps for a connector that passed
/// [`crate::validate::validate`], running `wanted` tasks ([`task_count`], or the
/// autoscaler's new choice through [`task_count_within`]).
pub fn task_inputs(
    connector: &KafkaConnector,
    wanted: i32,
    default_image: &str,
) -> Result<TaskInputs, Error> {
    let name = connector.metadata.name.clone().unwrap_or_default();
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let owner = connector.controller_owner_ref(&()).ok_or_else(|| {
        Error::InvalidSpec(format!(
            "connector {namespace}/{name} has no metadata.uid yet"
        ))
    })?;
    let spec = &connector.spec;
    let plugin_max = spec
        .source
        .as_ref()
        .and_then(|s| s.plugin.max_tasks())
        .or_else(|| spec.sink.as_ref().and_then(|s| s.plugin.max_tasks()));
    let tasks = plugin_max.map_or(wanted, |max| wanted.min(max));
    let policy = spec.restart_policy();
    let key = |r: &SecretKeyRef| SecretKey {
        name: r.name.clone(),
        key: r.key.clone(),
    };
    let tls = spec.kafka.tls.as_ref();
    let sasl = spec.kafka.sasl.as_ref();
    Ok(TaskInputs {
        connector_yaml: task_config_yaml(connector)?,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| default_image.to_string()),
        is_source: spec.is_source(),
        tasks,
        state: match spec.state {
            ConnectorState::Running => RunState::Running,
            ConnectorState::Paused => RunState::Paused,
            ConnectorState::Stopped => RunState::Stopped,
        },
        pod: spec
            .template
            .as_ref()
            .and_then(|t| t.pod.clone())
            .unwrap_or_default(),
        kafka_secrets: KafkaSecrets {
            tls_ca: tls.and_then(|t| t.ca.as_ref()).map(key),
            tls_cert: tls.and_then(|t| t.cert.as_ref()).map(key),
            tls_key: tls.and_then(|t| t.key.as_ref()).map(key),
            sasl_username: sasl.map(|s| key(&s.username.secret_key_ref)),
            sasl_password: sasl.map(|s| key(&s.password.secret_key_ref)),
        },
        plugin_secrets: plugin_secrets(spec, key),
        replication_slot: crate::replication_slot::cdc_source(connector).map(|cdc| SlotIdentity {
            name: cdc.slot_name(&namespace, &name),
            server: format!("{}:{}/{}", cdc.host, cdc.port(), cdc.database),
        }),
        backoff: Backoff {
            initial: Duration::from_secs(u64::from(policy.initial_backoff_seconds)),
            max: Duration::from_secs(u64::from(policy.max_backoff_seconds)),
            reset_after: Duration::from_secs(u64::from(policy.reset_after_seconds)),
        },
        generation: connector.metadata.generation.unwrap_or(0),
        owner,
        name,
        namespace,
    })
}

/// The Secrets a plugin block references, as (env var of [`contract`], Secret key).
fn plugin_secrets(
    spec: &ferry_crds::KafkaConnectorSpec,
    key: impl Fn(&SecretKeyRef) -> SecretKey,
) -> Vec<(String, SecretKey)> {
    use ferry_crds::contract;
    use ferry_crds::plugins::{SinkPlugin, SourcePlugin};
    let mut out = Vec::new();
    if let Some(SourcePlugin::PostgresCdc(cdc)) = spec.source.as_ref().map(|s| &s.plugin) {
        if let Some(password) = &cdc.password {
            out.push((
                contract::ENV_SOURCE_DATABASE_PASSWORD.to_string(),
                key(&password.secret_key_ref),
            ));
        }
    }
    if let Some(SinkPlugin::Postgres(db) | SinkPlugin::Mysql(db)) =
        spec.sink.as_ref().map(|s| &s.plugin)
    {
        if let Some(url) = &db.url {
            out.push((
                contract::ENV_SINK_DATABASE_URL.to_string(),
                key(&url.secret_key_ref),
            ));
        }
        if let Some(password) = &db.password {
            out.push((
                contract::ENV_SINK_DATABASE_PASSWORD.to_string(),
                key(&password.secret_key_ref),
            ));
        }
    }
    out
}

/// The task count: `spec.tasks`, or — while `spec.autoscaling` is set — the autoscaler's last
/// choice (`status.autoscaler.desiredTasks`), `minTasks` before it has chosen, always within
/// `minTasks..=maxTasks`.
pub fn task_count(connector: &KafkaConnector) -> i32 {
    let decided = connector
        .status
        .as_ref()
        .and_then(|s| s.autoscaler.as_ref())
        .map(|a| a.desired_tasks);
    task_count_within(&connector.spec, decided)
}

/// The task count with the autoscaler's choice `decided` (if it chose): `spec.tasks` without
/// `spec.autoscaling`; otherwise `decided`, `minTasks` before it has chosen, always within
/// `minTasks..=maxTasks`.
pub fn task_count_within(spec: &ferry_crds::KafkaConnectorSpec, decided: Option<i32>) -> i32 {
    match &spec.autoscaling {
        None => spec.desired_tasks(),
        Some(autoscaling) => {
            let min = autoscaling.min_tasks.max(0);
            let max = autoscaling.max_tasks.max(min);
            decided.map_or(min, |d| d).clamp(min, max)
        }
    }
}

/// The `connector.yaml` a task runs: apiVersion, kind, metadata name and namespace, and the
/// spec without `tasks`, `autoscaling` and `state`.
pub fn task_config_yaml(connector: &KafkaConnector) -> Result<String, Error> {
    let name = connector.metadata.name.clone().unwrap_or_default();
    let encode = |e: &dyn std::fmt::Display| Error::Encode {
        connector: name.clone(),
        message: e.to_string(),
    };
    let mut spec = serde_json::to_value(&connector.spec).map_err(|e| encode(&e))?;
    if let Some(fields) = spec.as_object_mut() {
        for field in FIELDS_NOT_IN_TASK_CONFIG {
            fields.remove(*field);
        }
    }
    let document = serde_json::json!({
        "apiVersion": format!("{API_GROUP}/{API_VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": connector.metadata.name,
            "namespace": connector.metadata.namespace,
        },
        "spec": spec,
    });
    serde_yaml::to_string(&document).map_err(|e| encode(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn autoscaling_overrides_tasks_within_its_bounds() {
        assert_eq!(task_count(&fixtures::sink("  tasks: 3")), 3);
        let mut c = fixtures::sink(
            "  tasks: 3\n  autoscaling: {minTasks: 2, maxTasks: 4, lagPerTask: 100}",
        );
        assert_eq!(task_count(&c), 2, "before the autoscaler decides: minTasks");
        c.status = Some(ferry_crds::KafkaConnectorStatus {
            autoscaler: Some(ferry_crds::status::AutoscalerStatus {
                desired_tasks: 9,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(task_count(&c), 4, "never above maxTasks");
        c.status
            .as_mut()
            .unwrap()
            .autoscaler
            .as_mut()
            .unwrap()
            .desired_tasks = 3;
        assert_eq!(task_count(&c), 3);
    }

    #[test]
    fn the_task_config_names_the_connector_and_keeps_secret_references() {
        let c = fixtures::sink(
            "  kafka: {bootstrapServers: 'k:9092', sasl: {mechanism: PLAIN, username: {secretKeyRef: {name: s, key: u}}, password: {secretKeyRef: {name: s, key: p}}}}",
        );
        let yaml = task_config_yaml(&c).unwrap();
        assert!(
            yaml.starts_with("apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata:\n")
        );
        assert!(yaml.contains("secretKeyRef"));
        let inputs = task_inputs(&c, task_count(&c), "img").unwrap();
        assert_eq!(inputs.kafka_secrets.sasl_password.unwrap().key, "p");
        assert_eq!(inputs.image, "img");
    }

    #[test]
    fn database_sink_secrets_become_env_references() {
        let mut c = fixtures::sink("");
        c.spec.sink = Some(
            serde_yaml::from_str(
                "{topics: [t], postgres: {host: db, password: {secretKeyRef: {name: pg, key: pw}}}}",
            )
            .unwrap(),
        );
        let inputs = task_inputs(&c, task_count(&c), "img").unwrap();
        assert_eq!(
            inputs.plugin_secrets,
            vec![(
                "FERRY_SINK_DATABASE_PASSWORD".to_string(),
                SecretKey {
                    name: "pg".into(),
                    key: "pw".into()
                }
            )]
        );
    }

    #[test]
    fn postgres_cdc_password_becomes_an_env_reference() {
        let mut c = fixtures::source("");
        c.spec.source = Some(
            serde_yaml::from_str(
                "{postgresCdc: {host: db, database: shop, topicPrefix: shop, password: {secretKeyRef: {name: pg, key: pw}}}}",
            )
            .unwrap(),
        );
        let inputs = task_inputs(&c, task_count(&c), "img").unwrap();
        assert_eq!(
            inputs.plugin_secrets,
            vec![(
                "FERRY_SOURCE_DATABASE_PASSWORD".to_string(),
                SecretKey {
                    name: "pg".into(),
                    key: "pw".into()
                }
            )]
        );
    }
}
