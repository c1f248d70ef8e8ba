//! Records as transforms and plugins see them ([`Record`]) and as they are in Kafka
//! ([`RawRecord`]).
#![warn(missing_docs)]

use crate::data::SchemaAndValue;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::FutureRecord;

/// A record header: a name and a typed value.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Header name (several headers may share one).
    pub key: String,
    /// Header value with its schema, if known.
    pub value: SchemaAndValue,
}

/// A record with typed key, value and headers: what transforms and plugins see.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Kafka topic (sinks: the topic read; sources: the topic to write).
    pub topic: String,
    /// Kafka partition, when known (sources may leave it to the partitioner).
    pub partition: Option<i32>,
    /// Kafka offset (sink records only).
    pub offset: Option<i64>,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// The key.
    pub key: SchemaAndValue,
    /// The value (a null value is a tombstone).
    pub value: SchemaAndValue,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// A record as bytes, as it is stored in Kafka.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRecord {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition, when known.
    pub partition: Option<i32>,
    /// Kafka offset, when known.
    pub offset: Option<i64>,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// Key bytes (`None`: null key).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order: name and bytes (`None`: null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawRecord {
    /// The record's headers, for a producer.
    pub fn kafka_headers(&self) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            headers = headers.insert(KafkaHeader {
                key: k,
                value: v.as_deref(),
            });
        }
        headers
    }

    /// A producer record to `topic` with this record's key, value and timestamp and
    /// `headers`; the partition is left to the caller.
    pub fn producer_record<'a>(
        &'a self,
        topic: &'a str,
        headers: OwnedHeaders,
    ) -> FutureRecord<'a, [u8], [u8]> {
        let mut rec: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = self.key.as_deref() {
            rec = rec.key(k);
        }
        if let Some(v) = self.value.as_deref() {
            rec = rec.payload(v);
        }
        if let Some(ts) = self.timestamp {
            rec = rec.timestamp(ts);
        }
        rec
    }
}

impl Record {
    /// A record on `topic` with null key and value, no headers and no coordinates.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            offset: None,
            timestamp: None,
            key: SchemaAndValue::null(),
            value: SchemaAndValue::null(),
            headers: Vec::new(),
        }
    }

    /// `topic/partition/offset` for error messages (`-` for an unknown part).
    pub fn coordinates(&self) -> String {
        coordinates(&self.topic, self.partition, self.offset)
    }
}

impl RawRecord {
    /// `topic/partition/offset` for error messages (`-` for an unknown part).
    pub fn coordinates(&self) -> String {
        coordinates(&self.topic, self.partition, self.offset)
    }
}

/// `topic/partition/offset` (`-` for an unknown part).
pub(crate) fn coordinates(topic: &str, partition: Option<i32>, offset: Option<i64>) -> String {
    let p = partition.map_or_else(|| "-".to_string(), |p| p.to_string());
    let o = offset.map_or_else(|| "-".to_string(), |o| o.to_string());
    format!("{topic}/{p}/{o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_show_unknown_parts() {
        let mut r = Record::new("orders");
        assert_eq!(r.coordinates(), "orders/-/-");
        r.partition = Some(2);
        r.offset = Some(17);
        assert_eq!(r.coordinates(), "orders/2/17");
    }
}
