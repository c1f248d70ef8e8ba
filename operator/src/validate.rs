//! Checks the operator makes before running a connector (pure): the facts it relies on, and
//! the CRD's schema and CEL rules again ([`ferry_crds::admission`]), which the API server
//! applied when the resource was written, perhaps under an older CRD.

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
    // The CRD's own schema and rules, for a resource stored under an older CRD.
    let violations = ferry_crds::admission::check(connector);
    if !violations.is_empty() {
        let said: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(Error::InvalidSpec(said.join("; ")));
    }
    Ok(())
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
            ("metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: 'k:9092'}}", "spec needs exactly one of source"),
            ("metadata: {name: a}\nspec: {kafka: {bootstrapServers: 'k:9092'}, sink: {topics: [t], discard: {}}}", "metadata.namespace"),
            ("metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: ' '}, sink: {topics: [t], discard: {}}}", "spec.kafka.bootstrapServers"),
            (
                "metadata: {name: a, namespace: n}\nspec: {kafka: {bootstrapServers: 'k:9092'}, sink: {topics: [t], discard: {}}, source: {datagen: {topic: t}}}",
                "spec needs exactly one of source",
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
                 spec: {{kafka: {{bootstrapServers: 'k:9092'}}, delivery: ExactlyOnce, {block}}}"
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
                "invalid connector spec: spec.delivery: Invalid value: \"object\": spec.delivery: \
                 ExactlyOnce is for source connectors and the postgres sink (which stores the \
                 Kafka positions with its rows); the other sinks deliver AtLeastOnce"
                    .to_string()
            )
        );
        assert!(exactly_once("sink: {topics: [t], mysql: {host: db}}")
            .unwrap_err()
            .contains("spec.delivery: ExactlyOnce is for source connectors"));
        assert_eq!(
            exactly_once(
                "sink: {topics: [t], postgres: {url: {secretKeyRef: {name: pg, key: url}}}}"
            ),
            Ok(())
        );
        let long = "x".repeat(MAX_CONNECTOR_NAME_LENGTH + 1);
        let c = connector(&format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: {long}, namespace: n}}\n\
             spec: {{kafka: {{bootstrapServers: 'k:9092'}}, sink: {{topics: [t], discard: {{}}}}}}"
        ));
        assert!(validate(&c)
            .unwrap_err()
            .to_string()
            .contains("metadata.name"));
    }
}
