//! librdkafka client properties from `spec.kafka`: bootstrap servers, TLS and SASL from the
//! connector's Secrets, and `spec.kafka.config` passed through, with Java client keys mapped
//! to their librdkafka names or refused with the reason, by the table that admission uses
//! too ([`ferry_crds::kafka_config_keys`]).
//!
//! Every Kafka client of a connector gets its properties here: the runner's (credentials
//! mounted into the task pod) and the operator's (credentials it read from the Secrets), so
//! a key that works for the tasks works for lag, resets and cleanup too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_crds::connector::KafkaSpec;
use ferry_crds::contract;
use ferry_crds::kafka_config_keys::{key_rule, refusal, KeyRule};
use rdkafka::ClientConfig;

/// One problem in `spec.kafka`: the field (e.g. `spec.kafka.config["group.id"]`) and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigProblem {
    /// Path of the offending field, from the resource's root.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

/// A SASL username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where the TLS certificates and key of `spec.kafka.tls` are.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsCredentials {
    /// Files mounted into the task pod from the Secrets: `ca.crt`, `tls.crt` and `tls.key`
    /// in this directory (see [`contract::KAFKA_TLS_DIR`]).
    Files(PathBuf),
    /// PEM text read from the Secrets (the operator's clients).
    Pem {
        /// CA certificate(s).
        ca: Option<String>,
        /// Client certificate.
        cert: Option<String>,
        /// Client key.
        key: Option<String>,
    },
}

impl std::fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsCredentials::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
            TlsCredentials::Pem { ca, cert, key } => f
                .debug_struct("Pem")
                .field("ca", &ca.is_some())
                .field("cert", &cert.is_some())
                .field("key", &key.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// The credentials of `spec.kafka.sasl` and `spec.kafka.tls`, as a client receives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// SASL username and password, when known.
    pub sasl: Option<SaslCredentials>,
    /// The TLS material.
    pub tls: TlsCredentials,
}

impl Default for Credentials {
    /// No SASL credentials; TLS files in the task pod's [`contract::KAFKA_TLS_DIR`].
    fn default() -> Self {
        Self {
            sasl: None,
            tls: TlsCredentials::Files(PathBuf::from(contract::KAFKA_TLS_DIR)),
        }
    }
}

impl Credentials {
    /// The credentials a task pod receives: SASL from the environment
    /// ([`contract::ENV_KAFKA_SASL_USERNAME`], [`contract::ENV_KAFKA_SASL_PASSWORD`]), TLS
    /// files in [`contract::ENV_KAFKA_TLS_DIR`] (default [`contract::KAFKA_TLS_DIR`]).
    pub fn from_task_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let sasl = match (
            var(contract::ENV_KAFKA_SASL_USERNAME),
            var(contract::ENV_KAFKA_SASL_PASSWORD),
        ) {
            (Some(username), Some(password)) => Some(SaslCredentials { username, password }),
            _ => None,
        };
        Self {
            sasl,
            tls: TlsCredentials::Files(
                var(contract::ENV_KAFKA_TLS_DIR)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(contract::KAFKA_TLS_DIR)),
            ),
        }
    }
}

/// Client properties common to every consumer, producer and admin client of a connector.
///
/// Errors name the field (`spec.kafka.config["max.poll.records"]`, ...).
/// `require_credentials`: the SASL credentials and TLS material must be present (a task
/// about to run, the operator about to connect); `false` for offline validation.
pub fn client_properties(
    kafka: &KafkaSpec,
    creds: &Credentials,
    require_credentials: bool,
) -> Result<BTreeMap<String, String>, Vec<ConfigProblem>> {
    let mut errors = Vec::new();
    let mut props = BTreeMap::new();
    if kafka.bootstrap_servers.trim().is_empty() {
        errors.push(ConfigProblem {
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
        match key_rule(key) {
            KeyRule::Pass => match librdkafka_rejects(key, value) {
                Some(message) => errors.push(ConfigProblem { field, message }),
                None => {
                    props.insert(key.clone(), value.clone());
                }
            },
            KeyRule::Map { to, value: mapping } => match mapping.convert(value) {
                Ok(v) => {
                    props.insert(to.to_string(), v);
                }
                Err(message) => errors.push(ConfigProblem { field, message }),
            },
            KeyRule::Credential | KeyRule::Refused(_) => errors.push(ConfigProblem {
                field,
                message: refusal(key, value).unwrap_or_default(),
            }),
        }
    }
    let tls = kafka.tls.is_some();
    if let Some(t) = &kafka.tls {
        tls_properties(t, &creds.tls, require_credentials, &mut props, &mut errors);
        if t.cert.is_some() != t.key.is_some() {
            errors.push(ConfigProblem {
                field: "spec.kafka.tls".into(),
                message: "cert and key go together: set both for mutual TLS, or neither".into(),
            });
        }
    }
    let sasl = kafka.sasl.is_some();
    if let Some(s) = &kafka.sasl {
        props.insert("sasl.mechanism".into(), s.mechanism.as_str().into());
        match &creds.sasl {
            Some(c) => {
                props.insert("sasl.username".into(), c.username.clone());
                props.insert("sasl.password".into(), c.password.clone());
            }
            None if require_credentials => errors.push(ConfigProblem {
                field: "spec.kafka.sasl".into(),
                message: format!(
                    "the SASL credentials are missing: env vars {} and {} must be set from the Secrets",
                    contract::ENV_KAFKA_SASL_USERNAME,
                    contract::ENV_KAFKA_SASL_PASSWORD
                ),
            }),
            None => {}
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

/// The `ssl.*` properties of `spec.kafka.tls`: file locations in a task pod, PEM text for
/// the operator's clients.
fn tls_properties(
    tls: &ferry_crds::connector::KafkaTls,
    material: &TlsCredentials,
    require_credentials: bool,
    props: &mut BTreeMap<String, String>,
    errors: &mut Vec<ConfigProblem>,
) {
    let (ca, cert, key) = match material {
        TlsCredentials::Files(_) => (None, None, None),
        TlsCredentials::Pem { ca, cert, key } => (ca.as_ref(), cert.as_ref(), key.as_ref()),
    };
    let parts = [
        (
            tls.ca.is_some(),
            "ca",
            contract::KAFKA_TLS_CA_FILE,
            "ssl.ca",
            ca,
        ),
        (
            tls.cert.is_some(),
            "cert",
            contract::KAFKA_TLS_CERT_FILE,
            "ssl.certificate",
            cert,
        ),
        (
            tls.key.is_some(),
            "key",
            contract::KAFKA_TLS_KEY_FILE,
            "ssl.key",
            key,
        ),
    ];
    for (set, name, file, prefix, pem) in parts {
        if !set {
            continue;
        }
        let field = format!("spec.kafka.tls.{name}");
        match material {
            TlsCredentials::Files(dir) => {
                let path = dir.join(file);
                if require_credentials && !Path::new(&path).exists() {
                    errors.push(ConfigProblem {
                        field,
                        message: format!(
                            "the Secret key is not mounted: {} does not exist",
                            path.display()
                        ),
                    });
                }
                props.insert(format!("{prefix}.location"), path.display().to_string());
            }
            TlsCredentials::Pem { .. } => match pem {
                Some(text) => {
                    props.insert(format!("{prefix}.pem"), text.clone());
                }
                None if require_credentials => errors.push(ConfigProblem {
                    field,
                    message: "the Secret key was not read".into(),
                }),
                None => {}
            },
        }
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
pub fn client_config(props: &BTreeMap<String, String>) -> ClientConfig {
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
            sasl: Some(SaslCredentials {
                username: "alice".into(),
                password: "pw".into(),
            }),
            tls: TlsCredentials::Files(PathBuf::from("/etc/ferry/kafka-tls")),
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

    #[test]
    fn the_operator_gets_pem_text_and_the_same_mapped_keys() {
        let k = kafka(
            r#"
bootstrapServers: b:9093
tls: {ca: {name: kafka-ca, key: ca.crt}, cert: {name: c, key: tls.crt}, key: {name: c, key: tls.key}}
config: {max.request.size: '2000000'}
"#,
        );
        let creds = Credentials {
            sasl: None,
            tls: TlsCredentials::Pem {
                ca: Some("CA".into()),
                cert: Some("CERT".into()),
                key: Some("KEY".into()),
            },
        };
        let p = client_properties(&k, &creds, true).unwrap();
        assert_eq!(p["ssl.ca.pem"], "CA");
        assert_eq!(p["ssl.certificate.pem"], "CERT");
        assert_eq!(p["ssl.key.pem"], "KEY");
        assert_eq!(p["message.max.bytes"], "2000000");
        assert!(!p.contains_key("max.request.size"));
        assert!(!p.contains_key("ssl.ca.location"));
        assert!(!format!("{creds:?}").contains("KEY"));
        client_config(&p)
            .create_native_config()
            .expect("librdkafka takes every property");
    }
}
