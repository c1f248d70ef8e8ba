//! What each key of `spec.kafka.config` becomes: the one table behind the CRD's CEL rules on
//! `spec.kafka.config` (admission), the offline validator, and the mapping to librdkafka
//! properties that every Kafka client of a connector gets (operator and tasks alike).
//!
//! `spec.kafka.config` takes librdkafka property names, and the Java client's names where
//! librdkafka calls the same setting otherwise (`max.request.size` is `message.max.bytes`).
//! A key that Ferry sets itself, that holds a credential, or that only means something to
//! the Java client is refused, with the reason.

/// What a `spec.kafka.config` key becomes.
#[derive(Clone, Copy, Debug)]
pub enum KeyRule {
    /// Passed to librdkafka as it is.
    Pass,
    /// A Java client key with another librdkafka name; the value is converted.
    Map {
        /// The librdkafka property.
        to: &'static str,
        /// How the value converts.
        value: ValueMapping,
    },
    /// Refused: the key holds a credential.
    Credential,
    /// Refused, with the reason (a sentence that follows the key's field path).
    Refused(&'static str),
}

/// How the value of a mapped key converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueMapping {
    /// The same value.
    Same,
    /// A number of bytes, given to librdkafka in kibibytes (at least 1).
    BytesToKibibytes,
}

impl ValueMapping {
    /// The librdkafka value of `value`, or why it cannot be converted.
    pub fn convert(self, value: &str) -> Result<String, String> {
        match self {
            ValueMapping::Same => Ok(value.to_string()),
            ValueMapping::BytesToKibibytes => {
                let bytes: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{value:?} is not a number of bytes"))?;
                Ok((bytes / 1024).max(1).to_string())
            }
        }
    }

    /// A regular expression every accepted value matches (for the CRD's CEL rules).
    pub fn value_pattern(self) -> Option<&'static str> {
        match self {
            ValueMapping::Same => None,
            ValueMapping::BytesToKibibytes => Some("^ *[0-9]+ *$"),
        }
    }
}

/// Why a credential key is refused, after the key's name.
pub const CREDENTIAL_REASON: &str = "holds a credential, and credentials never go in \
    spec.kafka.config: use spec.kafka.sasl or spec.kafka.tls with a secretKeyRef";

const FROM_TASK: &str = "is set by Ferry for each task and cannot be overridden";
const FROM_SECURITY: &str = "is set by Ferry from spec.kafka.sasl and spec.kafka.tls";
const JAVA_KEY_STORE: &str = "configures a Java key store, which librdkafka cannot read: give \
    PEM certificates in spec.kafka.tls";
const JAVA_CLASS: &str = "is a Java client class: records are (de)serialized by spec.converters";

/// Every key with a rule other than [`KeyRule::Pass`], besides keys whose name contains
/// `password` or `secret` (credentials too, see [`key_rule`]).
pub const KEYS: &[(&str, KeyRule)] = &[
    (
        "bootstrap.servers",
        KeyRule::Refused("is set by Ferry from spec.kafka.bootstrapServers"),
    ),
    (
        "group.id",
        KeyRule::Refused(
            "is set by Ferry: sink tasks share the consumer group ferry.<namespace>.<connector>",
        ),
    ),
    ("group.instance.id", KeyRule::Refused(FROM_TASK)),
    ("enable.auto.commit", KeyRule::Refused(FROM_TASK)),
    ("enable.auto.offset.store", KeyRule::Refused(FROM_TASK)),
    ("partition.assignment.strategy", KeyRule::Refused(FROM_TASK)),
    ("enable.idempotence", KeyRule::Refused(FROM_TASK)),
    ("acks", KeyRule::Refused(FROM_TASK)),
    ("transactional.id", KeyRule::Refused(FROM_TASK)),
    ("security.protocol", KeyRule::Refused(FROM_SECURITY)),
    ("sasl.mechanism", KeyRule::Refused(FROM_SECURITY)),
    ("sasl.mechanisms", KeyRule::Refused(FROM_SECURITY)),
    ("ssl.ca.pem", KeyRule::Refused(FROM_SECURITY)),
    ("ssl.certificate.pem", KeyRule::Refused(FROM_SECURITY)),
    ("sasl.jaas.config", KeyRule::Credential),
    ("sasl.oauthbearer.config", KeyRule::Credential),
    ("sasl.username", KeyRule::Credential),
    ("ssl.key.pem", KeyRule::Credential),
    ("ssl.keystore.key", KeyRule::Credential),
    ("ssl_key", KeyRule::Credential),
    ("ssl.truststore.location", KeyRule::Refused(JAVA_KEY_STORE)),
    ("ssl.truststore.type", KeyRule::Refused(JAVA_KEY_STORE)),
    ("ssl.keystore.location", KeyRule::Refused(JAVA_KEY_STORE)),
    ("ssl.keystore.type", KeyRule::Refused(JAVA_KEY_STORE)),
    ("key.serializer", KeyRule::Refused(JAVA_CLASS)),
    ("value.serializer", KeyRule::Refused(JAVA_CLASS)),
    ("key.deserializer", KeyRule::Refused(JAVA_CLASS)),
    ("value.deserializer", KeyRule::Refused(JAVA_CLASS)),
    (
        "max.poll.records",
        KeyRule::Refused("is not a librdkafka setting: batches are sized by the runner"),
    ),
    (
        "max.request.size",
        KeyRule::Map {
            to: "message.max.bytes",
            value: ValueMapping::Same,
        },
    ),
    (
        "delivery.timeout.ms",
        KeyRule::Map {
            to: "message.timeout.ms",
            value: ValueMapping::Same,
        },
    ),
    (
        "buffer.memory",
        KeyRule::Map {
            to: "queue.buffering.max.kbytes",
            value: ValueMapping::BytesToKibibytes,
        },
    ),
];

/// Whether a key's name says it holds a credential, whatever the key.
pub fn names_a_credential(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("password") || lower.contains("secret")
}

/// The rule of one `spec.kafka.config` key.
pub fn key_rule(key: &str) -> KeyRule {
    match KEYS.iter().find(|(k, _)| *k == key) {
        Some((_, rule)) => *rule,
        None if names_a_credential(key) => KeyRule::Credential,
        None => KeyRule::Pass,
    }
}

/// Why `key` with `value` is refused (a sentence that follows the key's field path); `None`
/// when the table lets it through (librdkafka has the last word on passed keys).
pub fn refusal(key: &str, value: &str) -> Option<String> {
    match key_rule(key) {
        KeyRule::Pass => None,
        KeyRule::Credential => Some(CREDENTIAL_REASON.to_string()),
        KeyRule::Refused(why) => Some(why.to_string()),
        KeyRule::Map { value: mapping, .. } => mapping.convert(value).err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_rule() {
        assert!(matches!(key_rule("linger.ms"), KeyRule::Pass));
        assert!(matches!(key_rule("sasl.jaas.config"), KeyRule::Credential));
        assert!(matches!(key_rule("my.Secret.thing"), KeyRule::Credential));
        assert!(matches!(
            key_rule("ssl.keystore.password"),
            KeyRule::Credential
        ));
        assert!(matches!(
            key_rule("max.request.size"),
            KeyRule::Map {
                to: "message.max.bytes",
                ..
            }
        ));
        assert_eq!(
            refusal("group.id", "x").as_deref(),
            Some("is set by Ferry: sink tasks share the consumer group ferry.<namespace>.<connector>")
        );
        assert_eq!(
            refusal("buffer.memory", "lots").as_deref(),
            Some("\"lots\" is not a number of bytes")
        );
        assert_eq!(refusal("buffer.memory", "33554432"), None);
        assert_eq!(
            ValueMapping::BytesToKibibytes.convert("100"),
            Ok("1".to_string())
        );
    }

    #[test]
    fn keys_are_listed_once() {
        let mut keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key is listed twice");
    }

    #[test]
    fn byte_counts_convert_only_when_they_are_numbers() {
        for (v, ok) in [("1024", true), (" 1024 ", true), ("1k", false), ("", false)] {
            assert_eq!(
                ValueMapping::BytesToKibibytes.convert(v).is_ok(),
                ok,
                "{v:?}"
            );
        }
    }
}
