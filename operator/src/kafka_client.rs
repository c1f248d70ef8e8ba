//! The operator's Kafka client configuration for a connector: `spec.kafka` with the
//! credentials read from the Secrets the connector names, in its namespace (and nowhere
//! else). The only place in the operator that builds a Kafka client configuration.

use ferry_crds::connector::{SaslMechanism, SecretKeyRef};
use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rdkafka::config::ClientConfig;

use crate::error::Error;

/// The Kafka client configuration of `connector`: bootstrap servers, `spec.kafka.config`,
/// TLS and SASL with the values of the Secrets they reference.
pub(crate) async fn kafka_config(
    client: &Client,
    connector: &KafkaConnector,
) -> Result<ClientConfig, Error> {
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

/// The value of one key of a Secret in `namespace`, as UTF-8 text.
pub(crate) async fn secret_value(
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<String, Error> {
    let error = |message: String| Error::Secret {
        namespace: namespace.to_string(),
        name: reference.name.clone(),
        message,
    };
    let secret = secrets.get(&reference.name).await.map_err(|e| match &e {
        kube::Error::Api(status) if status.code == 403 => error(format!(
            "cannot be read: the operator is not allowed to read Secrets (Helm value \
                 rbac.readSecrets: true allows it): {e}"
        )),
        _ => error(format!("cannot be read: {e}")),
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .ok_or_else(|| error(format!("has no key {:?}", reference.key)))?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| error(format!("key {:?} is not UTF-8 text", reference.key)))
}
