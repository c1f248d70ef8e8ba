//! The record format of the source offsets topic ([`DEFAULT_OFFSETS_TOPIC`]), shared by the
//! runner (which stores a source task's offsets there) and the operator (which resets and
//! deletes them): the key is `<namespace>/<connector>/<source partition as JSON>`, the value
//! the source offset as a JSON object of strings, and a record without a value (a tombstone)
//! deletes the offset of its source partition.
//!
//! [`DEFAULT_OFFSETS_TOPIC`]: ferry_crds::contract::DEFAULT_OFFSETS_TOPIC

use std::collections::BTreeMap;

/// A source partition, in the plugin's own terms, e.g. `{"path": "/data/in.txt"}`.
pub type SourcePartition = BTreeMap<String, String>;
/// A position in a source partition, in the plugin's own terms, e.g. `{"position": "1024"}`.
pub type SourceOffset = BTreeMap<String, String>;

/// The key prefix of a connector's records in the offsets topic.
pub fn key_prefix(namespace: &str, connector: &str) -> String {
    format!("{namespace}/{connector}/")
}

/// The key of one source partition's offset.
pub fn offset_key(namespace: &str, connector: &str, partition: &SourcePartition) -> String {
    let mut key = key_prefix(namespace, connector);
    push_json_object(&mut key, partition);
    key
}

/// The value of a stored offset: a JSON object of strings.
pub fn offset_value(offset: &SourceOffset) -> Vec<u8> {
    let mut value = String::new();
    push_json_object(&mut value, offset);
    value.into_bytes()
}

/// The source partition of a key, when the key belongs to the connector whose key prefix is
/// `prefix`; `Some(Err)` when it does but its partition is not a JSON object of strings.
pub fn partition_of_key(prefix: &str, key: &[u8]) -> Option<Result<SourcePartition, String>> {
    let key = std::str::from_utf8(key).ok()?;
    let json = key.strip_prefix(prefix)?;
    Some(serde_json::from_str(json).map_err(|e| e.to_string()))
}

/// Reads the value of a stored offset.
pub fn parse_offset_value(value: &[u8]) -> Result<SourceOffset, String> {
    serde_json::from_slice(value).map_err(|e| e.to_string())
}

/// Writes a map of strings as a JSON object (sorted keys, no spaces), without a fallible
/// serializer.
fn push_json_object(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(key.as_str()).to_string());
        out.push(':');
        out.push_str(&serde_json::Value::from(value.as_str()).to_string());
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_keep_their_format() {
        let partition = BTreeMap::from([("path".to_string(), "/in \"x\".txt".to_string())]);
        let key = offset_key("shop", "lines", &partition);
        assert_eq!(key, r#"shop/lines/{"path":"/in \"x\".txt"}"#);
        assert_eq!(
            partition_of_key(&key_prefix("shop", "lines"), key.as_bytes()),
            Some(Ok(partition.clone()))
        );
        assert_eq!(
            partition_of_key(&key_prefix("shop", "line"), key.as_bytes()),
            None
        );
        assert!(matches!(
            partition_of_key("shop/lines/", b"shop/lines/not json"),
            Some(Err(_))
        ));
        let offset = BTreeMap::from([
            ("position".to_string(), "10".to_string()),
            ("a".to_string(), "b".to_string()),
        ]);
        let value = offset_value(&offset);
        assert_eq!(value, br#"{"a":"b","position":"10"}"#);
        assert_eq!(parse_offset_value(&value), Ok(offset));
        let two = BTreeMap::from([
            ("task".to_string(), "0".to_string()),
            ("tasks".to_string(), "2".to_string()),
        ]);
        assert_eq!(
            offset_key("n", "c", &two),
            serde_json::to_string(&two)
                .map(|j| format!("n/c/{j}"))
                .unwrap()
        );
    }
}
