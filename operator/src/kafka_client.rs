//! The operator's Kafka client configuration for a connector: `spec.kafka` with the
//! credentials read from the Secrets the connector names, in its namespace (and nowhere
//! else), turned into client properties by the shared Kafka layer. The only place in the
//! operator that builds a Kafka client configuration.

use ferry_crds::connector::SecretKeyRef;
use ferry_crds::KafkaConnector;
use ferry_kafka::{Credentials, SaslCredentials, TlsCredentials};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rdkafka::config::ClientConfig;

use crate::error::Error;

/// The Kafka client configuration of the operator's clients for `connector`: the same
/// properties its tasks get ([`ferry_kafka::client_properties`]: Java client keys mapped,
/// refused keys refused), with the credentials read from the Secrets the connector names.
pub(crate) async fn kafka_config(
    client: &Client,
    connector: &KafkaConnector,
) -> Result<ClientConfig, Error> {
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let kafka = &connector.spec.kafka;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut pem = [None, None, None];
    if let Some(tls) = &kafka.tls {
        for (slot, reference) in pem.iter_mut().zip([&tls.ca, &tls.cert, &tls.key]) {
            if let Some(reference) = reference {
                *slot = Some(secret_value(&secrets, &namespace, reference).await?);
            }
        }
    }
    let sasl = match &kafka.sasl {
        Some(sasl) => Some(SaslCredentials {
            username: secret_value(&secrets, &namespace, &sasl.username.secret_key_ref).await?,
            password: secret_value(&secrets, &namespace, &sasl.password.secret_key_ref).await?,
        }),
        None => None,
    };
    let [ca, cert, key] = pem;
    let credentials = Credentials {
        sasl,
        tls: TlsCredentials::Pem { ca, cert, key },
    };
    let properties =
        ferry_kafka::client_properties(kafka, &credentials, true).map_err(|problems| {
            Error::InvalidSpec(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    Ok(ferry_kafka::client_config(&properties))
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
