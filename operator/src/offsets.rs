//! Offsets cleanup on removal: the `ferry.rs/delete-offsets` finalizer is present exactly
//! while `spec.offsets.deleteOnRemoval` is true; when such a connector is deleted, a sink's
//! consumer group is deleted with Kafka's admin API before the finalizer is removed. The
//! operator reads only the Secrets the connector itself names, in its namespace.

use std::time::Duration;

use ferry_crds::connector::{SaslMechanism, SecretKeyRef};
use ferry_crds::contract::consumer_group;
use ferry_crds::names::FINALIZER_DELETE_OFFSETS;
use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::Error;

/// What the finalizer step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Nothing to do.
    None,
    /// Add the finalizer.
    Add,
    /// Remove the finalizer (no cleanup wanted any more).
    Remove,
    /// The connector is being deleted: clean up, then remove the finalizer.
    CleanUpAndRemove,
}

/// Decides the finalizer step (pure).
pub fn finalizer_step(connector: &KafkaConnector) -> FinalizerStep {
    let has = connector
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER_DELETE_OFFSETS));
    let wanted = connector
        .spec
        .offsets
        .as_ref()
        .is_some_and(|o| o.delete_on_removal);
    let deleting = connector.metadata.deletion_timestamp.is_some();
    match (deleting, has, wanted) {
        (true, true, true) => FinalizerStep::CleanUpAndRemove,
        (true, true, false) => FinalizerStep::Remove,
        (true, false, _) => FinalizerStep::None,
        (false, false, true) => FinalizerStep::Add,
        (false, true, false) => FinalizerStep::Remove,
        (false, _, _) => FinalizerStep::None,
    }
}

/// Sets the connector's finalizers to `finalizers`, if its resourceVersion is unchanged.
pub async fn set_finalizers(
    client: &Client,
    connector: &KafkaConnector,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), &namespace);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": connector.metadata.resource_version,
            "finalizers": finalizers,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(format!(
            "updating the finalizers of connector {namespace}/{name}"
        )))?;
    Ok(())
}

/// The connector's finalizers with ours added or removed.
pub fn finalizers_with(connector: &KafkaConnector, ours: bool) -> Vec<String> {
    let mut finalizers: Vec<String> = connector
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER_DELETE_OFFSETS)
        .collect();
    if ours {
        finalizers.push(FINALIZER_DELETE_OFFSETS.to_string());
    }
    finalizers
}

/// The outcome of [`delete_offsets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Done; what was done, in words.
    Done(String),
    /// The consumer group still has members (static members of stopped tasks stay until
    /// their session times out): try again shortly.
    GroupNotEmpty(String),
}

/// Deletes the connector's offsets. Call it once the connector's task pods are gone.
pub async fn delete_offsets(client: &Client, connector: &KafkaConnector) -> Result<Cleanup, Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    if connector.spec.sink.is_none() {
        return Ok(Cleanup::Done(format!(
            "source offsets of {namespace}/{name} stay in the offsets topic: deleting them is \
             not supported"
        )));
    }
    let group = consumer_group(&namespace, &name);
    let config = kafka_config(client, connector).await?;
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| Error::OffsetsCleanup {
            group: group.clone(),
            message: format!("creating a Kafka admin client: {e}"),
        })?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .delete_groups(&[group.as_str()], &options)
        .await
        .map_err(|e| Error::OffsetsCleanup {
            group: group.clone(),
            message: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {
                return Ok(Cleanup::Done(format!(
                    "consumer group {group} did not exist"
                )));
            }
            Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {
                return Ok(Cleanup::GroupNotEmpty(format!(
                    "consumer group {group} still has members; the stopped tasks' static \
                     memberships expire after the session timeout"
                )));
            }
            Err((_, code)) => {
                return Err(Error::OffsetsCleanup {
                    group,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(Cleanup::Done(format!("deleted consumer group {group}")))
}

async fn kafka_config(client: &Client, connector: &KafkaConnector) -> Result<ClientConfig, Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let kafka = &connector.spec.kafka;
    let mut config = ClientConfig::new();
    for (key, value) in &kafka.config {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let tls = kafka.tls.is_some();
    if let Some(tls) = &kafka.tls {
        for (reference, property) in [
            (&tls.ca, "ssl.ca.pem"),
            (&tls.cert, "ssl.certificate.pem"),
            (&tls.key, "ssl.key.pem"),
        ] {
            if let Some(reference) = reference {
                config.set(
                    property,
                    secret_value(&secrets, &namespace, reference).await?,
                );
            }
        }
    }
    match &kafka.sasl {
        Some(sasl) => {
            config.set(
                "security.protocol",
                if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" },
            );
            config.set("sasl.mechanism", mechanism(sasl.mechanism));
            config.set(
                "sasl.username",
                secret_value(&secrets, &namespace, &sasl.username.secret_key_ref).await?,
            );
            config.set(
                "sasl.password",
                secret_value(&secrets, &namespace, &sasl.password.secret_key_ref).await?,
            );
        }
        None if tls => {
            config.set("security.protocol", "SSL");
        }
        None => {}
    }
    Ok(config)
}

fn mechanism(mechanism: SaslMechanism) -> &'static str {
    mechanism.as_str()
}

async fn secret_value(
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<String, Error> {
    let error = |message: String| Error::Secret {
        namespace: namespace.to_string(),
        name: reference.name.clone(),
        message,
    };
    let secret = secrets
        .get(&reference.name)
        .await
        .map_err(|e| error(format!("cannot be read: {e}")))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .ok_or_else(|| error(format!("has no key {:?}", reference.key)))?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| error(format!("key {:?} is not UTF-8 text", reference.key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(extra: &str) -> KafkaConnector {
        serde_yaml::from_str(&format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\n{extra}\n\
             spec: {{kafka: {{bootstrapServers: k}}, sink: {{topics: [t], discard: {{}}}}, offsets: {{deleteOnRemoval: true}}}}"
        ))
        .unwrap()
    }

    #[test]
    fn finalizer_follows_delete_on_removal() {
        let c = connector("metadata: {name: a, namespace: n}");
        assert_eq!(finalizer_step(&c), FinalizerStep::Add);
        let c =
            connector("metadata: {name: a, namespace: n, finalizers: [ferry.rs/delete-offsets]}");
        assert_eq!(finalizer_step(&c), FinalizerStep::None);
        let c = connector(
            "metadata: {name: a, namespace: n, finalizers: [other, ferry.rs/delete-offsets], deletionTimestamp: '2026-11-22T10:00:00Z'}",
        );
        assert_eq!(finalizer_step(&c), FinalizerStep::CleanUpAndRemove);
        assert_eq!(finalizers_with(&c, false), vec!["other".to_string()]);
        let mut c =
            connector("metadata: {name: a, namespace: n, finalizers: [ferry.rs/delete-offsets]}");
        c.spec.offsets = None;
        assert_eq!(finalizer_step(&c), FinalizerStep::Remove);
        c.metadata.finalizers = None;
        assert_eq!(finalizer_step(&c), FinalizerStep::None);
    }
}
