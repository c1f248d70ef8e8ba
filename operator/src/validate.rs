//! Checks the operator makes before running a connector (pure). The API server already
//! enforces the schema and its CEL rules; these are the facts the operator relies on.

use ferry_crds::names::MAX_CONNECTOR_NAME_LENGTH;
use ferry_crds::KafkaConnector;

use crate::error::Error;

/// Checks that the connector can be turned into task pods.
pub fn validate(connector: &KafkaConnector) -> Result<(), Error> {
    let name = connector.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(Error::InvalidSpec("metadata.name is empty".into()));
    }
    if name.len() > MAX_CONNECTOR_NAME_LENGTH {
        return Err(Error::InvalidSpec(format!(
            "metadata.name {name:?} is {} characters long; at most {MAX_CONNECTOR_NAME_LENGTH} \
             are allowed so that task pod names stay valid",
            name.len()
        )));
    }
    if connector
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(Error::InvalidSpec(format!(
            "connector {name} has no metadata.namespace"
        )));
    }
    let spec = &connector.spec;
    match (&spec.source, &spec.sink) {
        (Some(_), Some(_)) => Err(Error::InvalidSpec(
            "spec.source and spec.sink are both set; set exactly one".into(),
        )),
        (None, None) => Err(Error::InvalidSpec(
            "neither spec.source nor spec.sink is set; set exactly one".into(),
        )),
        _ if spec.kafka.bootstrap_servers.trim().is_empty() => Err(Error::InvalidSpec(
            "spec.kafka.bootstrapServers is empty".into(),
        )),
        _ => check_delivery(spec),
    }
}

/// `spec.delivery: ExactlyOnce` on a sink that cannot store Kafka positions with its writes
/// is refused (the API server's rule does so too, for resources stored under this CRD): a
/// connector must not look as if it had a guarantee it lacks.
fn check_delivery(spec: &ferry_crds::KafkaConnectorSpec) -> Result<(), Error> {
    match ferry_crds::validation::exactly_once_refusal(spec) {
        Some(message) => Err(Error::InvalidSpec(format!("spec.delivery: {message}"))),
        None => Ok(()),
    }
}

/// A connector that passed [`validate`]: what the later steps of the reconcile read.
#[derive(Clone, Copy, Debug)]
pub struct Validated<'a> {
    /// The connector.
    pub connector: &'a KafkaConnector,
    /// Its namespace (not empty).
    pub namespace: &'a str,
    /// Its name (not empty, short enough for task pod names).
    pub name: &'a str,
}

/// Runs [`validate`]; the connector as validated.
pub fn validated(connector: &KafkaConnector) -> Result<Validated<'_>, Error> {
    validate(connector)?;
    Ok(Validated {
        connector,
        namespace: connector.metadata.namespace.as_deref().unwrap_or_default(),
        name: connector.metadata.name.as_deref().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(yaml: &str) -> KafkaConnector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn accepts_a_sink() {
        let c = connector(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {name: a, namespace: n}\n\
             spec: {kafka: {bootstrapServers: 'k:9092'}, sink: {topics: [t], discard: {}}}",
        );
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn rejects_what_cannot_run_naming_the_field() {
        let cases = [
            ("metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: k}}", "neither spec.source nor spec.sink"),
            ("metadata: {name: a}\nspec: {kafka: {bootstrapServers: k}, sink: {topics: [t], discard: {}}}", "metadata.namespace"),
            ("metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: ' '}, sink: {topics: [t], discard: {}}}", "spec.kafka.bootstrapServers"),
            (
                "metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: k}, sink: {topics: [t], discard: {}}, source: {datagen: {topic: t}}}",
                "both set",
            ),
        ];
        for (body, expected) in cases {
            let c = connector(&format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\n{body}"
            ));
            let err = validate(&c).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        let exactly_once = |block: &str| {
            validate(&connector(&format!(
                "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: a, namespace: n}}\n\
                 spec: {{kafka: {{bootstrapServers: k}}, delivery: ExactlyOnce, {block}}}"
            )))
            .map_err(|e| e.to_string())
        };
        assert_eq!(exactly_once("source: {datagen: {topic: t}}"), Ok(()));
        assert_eq!(
            exactly_once("source: {postgresCdc: {host: db, database: shop, topicPrefix: shop}}"),
            Ok(())
        );
        assert_eq!(
            exactly_once("sink: {topics: [t], file: {path: /o}}"),
            Err(
                "invalid connector spec: spec.delivery: the file sink delivers AtLeastOnce only \
                 (an ExactlyOnce sink stores the Kafka positions with its writes: postgres); \
                 remove spec.delivery or set it to AtLeastOnce"
                    .to_string()
            )
        );
        assert!(exactly_once("sink: {topics: [t], mysql: {host: db}}")
            .unwrap_err()
            .contains("the mysql sink delivers AtLeastOnce only"));
        assert_eq!(
            exactly_once(
                "sink: {topics: [t], postgres: {url: {secretKeyRef: {name: pg, key: url}}}}"
            ),
            Ok(())
        );
        let long = "x".repeat(MAX_CONNECTOR_NAME_LENGTH + 1);
        let c = connector(&format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {long}, namespace: n}}\n\
             spec: {{kafka: {{bootstrapServers: k}}, sink: {{topics: [t], discard: {{}}}}}}"
        ));
        assert!(validate(&c)
            .unwrap_err()
            .to_string()
            .contains("metadata.name"));
    }
}
