//! librdkafka client properties from `spec.kafka`: bootstrap servers, TLS and SASL from the
//! task's Secrets, and `spec.kafka.config` passed through, with Java-client-only keys mapped
//! to their librdkafka names or rejected with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_crds::connector::{KafkaSpec, SaslMechanism};
use ferry_crds::contract;
use rdkafka::ClientConfig;

use crate::config_error::ConfigError;

/// Credentials the pod receives from Secrets (env vars and files, see [`contract`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// SASL username.
    pub sasl_username: Option<String>,
    /// SASL password.
    pub sasl_password: Option<String>,
    /// Directory holding `ca.crt`, `tls.crt`, `tls.key`.
    pub tls_dir: PathBuf,
}

impl Credentials {
    /// Reads the credentials from the environment ([`contract::ENV_KAFKA_SASL_USERNAME`], ...).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            sasl_username: var(contract::ENV_KAFKA_SASL_USERNAME),
            sasl_password: var(contract::ENV_KAFKA_SASL_PASSWORD),
            tls_dir: var(contract::ENV_KAFKA_TLS_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(contract::KAFKA_TLS_DIR)),
        }
    }
}

/// What a `spec.kafka.config` key becomes.
#[derive(Debug)]
enum KeyRule {
    /// Passed to librdkafka as it is.
    Pass,
    /// A Java client key with another librdkafka name; the value is converted.
    Map(&'static str, fn(&str) -> Result<String, String>),
    /// Not accepted, with the reason.
    Reject(&'static str),
}

fn same(v: &str) -> Result<String, String> {
    Ok(v.to_string())
}

fn bytes_to_kbytes(v: &str) -> Result<String, String> {
    let bytes: u64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a number of bytes"))?;
    Ok((bytes / 1024).max(1).to_string())
}

fn rule(key: &str) -> KeyRule {
    const MANAGED: &str = "is set by Ferry for each task and cannot be overridden";
    match key {
        "bootstrap.servers" => KeyRule::Reject("is set from spec.kafka.bootstrapServers"),
        "group.id" => KeyRule::Reject(
            "is set by Ferry: sink tasks share the consumer group ferry.<namespace>.<connector>",
        ),
        "group.instance.id" | "enable.auto.commit" | "enable.auto.offset.store"
        | "partition.assignment.strategy" | "enable.idempotence" | "acks" | "transactional.id" => {
            KeyRule::Reject(MANAGED)
        }
        "sasl.jaas.config" | "sasl.username" | "sasl.password" | "ssl.key.password"
        | "ssl.keystore.password" | "ssl.truststore.password" | "ssl.key.pem"
        | "ssl.certificate.pem" | "ssl.ca.pem" => KeyRule::Reject(
            "is a credential, and credentials never go in spec.kafka.config: use spec.kafka.sasl or spec.kafka.tls with a secretKeyRef",
        ),
        "ssl.truststore.location" | "ssl.truststore.type" | "ssl.keystore.location"
        | "ssl.keystore.type" => KeyRule::Reject(
            "configures a Java key store, which librdkafka cannot read: give PEM certificates in spec.kafka.tls",
        ),
        "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
            KeyRule::Reject("is a Java client class: records are (de)serialized by spec.converters")
        }
        "max.poll.records" => {
            KeyRule::Reject("is not a librdkafka setting: batches are sized by the runner")
        }
        "max.request.size" => KeyRule::Map("message.max.bytes", same),
        "delivery.timeout.ms" => KeyRule::Map("message.timeout.ms", same),
        "buffer.memory" => KeyRule::Map("queue.buffering.max.kbytes", bytes_to_kbytes),
        "sasl.mechanism" | "security.protocol" => {
            KeyRule::Reject("is set from spec.kafka.sasl and spec.kafka.tls")
        }
        _ => KeyRule::Pass,
    }
}

/// Client properties common to consumers and producers of this task.
///
/// Errors name the field (`spec.kafka.config["max.poll.records"]`, ...). `check_files`:
/// also require the TLS files to exist (not in offline validation).
pub fn client_properties(
    kafka: &KafkaSpec,
    creds: &Credentials,
    check_files: bool,
) -> Result<BTreeMap<String, String>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut props = BTreeMap::new();
    if kafka.bootstrap_servers.trim().is_empty() {
        errors.push(ConfigError {
            field: "spec.kafka.bootstrapServers".into(),
            message: "must list at least one host:port".into(),
        });
    }
    props.insert(
        "bootstrap.servers".to_string(),
        kafka.bootstrap_servers.clone(),
    );
    for (key, value) in &kafka.config {
        let field = format!("spec.kafka.config[{key:?}]");
        match rule(key) {
            KeyRule::Pass => {
                if let Some(msg) = librdkafka_rejects(key, value) {
                    errors.push(ConfigError {
                        field,
                        message: msg,
                    });
                } else {
                    props.insert(key.clone(), value.clone());
                }
            }
            KeyRule::Map(to, convert) => match convert(value) {
                Ok(v) => {
                    props.insert(to.to_string(), v);
                }
                Err(message) => errors.push(ConfigError { field, message }),
            },
            KeyRule::Reject(why) => errors.push(ConfigError {
                field,
                message: format!("{key} {why}"),
            }),
        }
    }
    let tls = kafka.tls.is_some();
    if let Some(t) = &kafka.tls {
        let files = [
            (
                t.ca.is_some(),
                contract::KAFKA_TLS_CA_FILE,
                "ssl.ca.location",
                "ca",
            ),
            (
                t.cert.is_some(),
                contract::KAFKA_TLS_CERT_FILE,
                "ssl.certificate.location",
                "cert",
            ),
            (
                t.key.is_some(),
                contract::KAFKA_TLS_KEY_FILE,
                "ssl.key.location",
                "key",
            ),
        ];
        for (set, file, prop, name) in files {
            if !set {
                continue;
            }
            let path = creds.tls_dir.join(file);
            if check_files && !Path::new(&path).exists() {
                errors.push(ConfigError {
                    field: format!("spec.kafka.tls.{name}"),
                    message: format!(
                        "the Secret key is not mounted: {} does not exist",
                        path.display()
                    ),
                });
            }
            props.insert(prop.to_string(), path.display().to_string());
        }
        if t.cert.is_some() != t.key.is_some() {
            errors.push(ConfigError {
                field: "spec.kafka.tls".into(),
                message: "cert and key go together: set both for mutual TLS, or neither".into(),
            });
        }
    }
    let sasl = kafka.sasl.is_some();
    if let Some(s) = &kafka.sasl {
        let mechanism = match s.mechanism {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        };
        props.insert("sasl.mechanism".into(), mechanism.into());
        match (&creds.sasl_username, &creds.sasl_password) {
            (Some(u), Some(p)) => {
                props.insert("sasl.username".into(), u.clone());
                props.insert("sasl.password".into(), p.clone());
            }
            _ if check_files => errors.push(ConfigError {
                field: "spec.kafka.sasl".into(),
                message: format!(
                    "the SASL credentials are missing: env vars {} and {} must be set from the Secrets",
                    contract::ENV_KAFKA_SASL_USERNAME,
                    contract::ENV_KAFKA_SASL_PASSWORD
                ),
            }),
            _ => {}
        }
    }
    let protocol = match (tls, sasl) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    props.insert("security.protocol".into(), protocol.into());
    if errors.is_empty() {
        Ok(props)
    } else {
        Err(errors)
    }
}

/// librdkafka's own verdict on one property, without connecting anywhere.
fn librdkafka_rejects(key: &str, value: &str) -> Option<String> {
    let mut c = ClientConfig::new();
    c.set(key, value);
    match c.create_native_config() {
        Ok(_) => None,
        Err(rdkafka::error::KafkaError::ClientConfig(_, desc, _, _)) => Some(desc),
        Err(e) => Some(e.to_string()),
    }
}

/// An rdkafka [`ClientConfig`] holding `props`.
pub fn to_client_config(props: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(yaml: &str) -> KafkaSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn passes_maps_and_rejects_keys_naming_each_field() {
        let k = kafka(
            r#"
bootstrapServers: localhost:9092
config:
  linger.ms: "5"
  max.request.size: "2000000"
  buffer.memory: "33554432"
  group.id: mine
  sasl.jaas.config: secret
  ssl.truststore.location: /x.jks
  no.such.property: "1"
"#,
        );
        let errs = client_properties(&k, &Credentials::default(), false).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.kafka.config[\"group.id\"]",
                "spec.kafka.config[\"no.such.property\"]",
                "spec.kafka.config[\"sasl.jaas.config\"]",
                "spec.kafka.config[\"ssl.truststore.location\"]",
            ]
        );
        assert!(errs[2].message.contains("secretKeyRef"));
        assert!(
            errs[1].message.contains("No such configuration property"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn maps_java_keys_to_librdkafka_names() {
        let k = kafka("bootstrapServers: b:9092\nconfig: {max.request.size: '2000000', buffer.memory: '33554432', linger.ms: '5'}");
        let p = client_properties(&k, &Credentials::default(), false).unwrap();
        assert_eq!(p["message.max.bytes"], "2000000");
        assert_eq!(p["queue.buffering.max.kbytes"], "32768");
        assert_eq!(p["linger.ms"], "5");
        assert_eq!(p["security.protocol"], "plaintext");
    }

    #[test]
    fn sasl_and_tls_come_from_the_secrets() {
        let k = kafka(
            r#"
bootstrapServers: b:9093
tls: {ca: {name: kafka-ca, key: ca.crt}}
sasl: {mechanism: SCRAM-SHA-512, username: {secretKeyRef: {name: u, key: u}}, password: {secretKeyRef: {name: p, key: p}}}
"#,
        );
        let creds = Credentials {
            sasl_username: Some("alice".into()),
            sasl_password: Some("pw".into()),
            tls_dir: PathBuf::from("/etc/ferry/kafka-tls"),
        };
        let p = client_properties(&k, &creds, false).unwrap();
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["sasl.username"], "alice");
        assert_eq!(p["ssl.ca.location"], "/etc/ferry/kafka-tls/ca.crt");
        let errs = client_properties(&k, &Credentials::default(), true).unwrap_err();
        assert!(errs.iter().any(|e| e.field == "spec.kafka.sasl"));
        assert!(errs.iter().any(|e| e.field == "spec.kafka.tls.ca"));
    }
}
