//! The background read of a connector's offsets in Kafka: the summary in `status.offsets`
//! and the per-partition figures in the metrics. A reconcile never waits for it.
//!
//! When the offsets cannot be read, `status.offsets.error` says why and `status.offsets.lag`
//! is empty (the lag of an older read is not shown as if it were current); the reconcile then
//! shows the `OffsetsReadable=False` condition ([`crate::status::offsets_condition`]).

use std::sync::Arc;

use ferry_crds::contract::{consumer_group, DEFAULT_OFFSETS_TOPIC};
use ferry_crds::status::OffsetsStatus;
use ferry_crds::KafkaConnector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::Instrument;

use crate::context::Context;
use crate::error::Error;
use crate::kafka_client::kafka_config;
use crate::metrics::SinkPartitionOffset;
use crate::offset_reset;
use crate::offset_store;
use crate::status_writer::{self, StatusPart};

/// When `status.offsets` is older than [`offset_reset::OFFSETS_READ_INTERVAL`] and no read
/// of this connector runs, starts one in the background ([`refresh_offsets`]): a reconcile
/// never waits for Kafka, and the reads of many connectors share a few slots
/// ([`crate::context::OffsetReads`]).
pub fn refresh_offsets_in_background(ctx: &Arc<Context>, connector: &KafkaConnector) {
    if !offset_reset::offsets_read_due(connector, Timestamp::now()) {
        return;
    }
    let key = format!(
        "{}/{}",
        connector.metadata.namespace.as_deref().unwrap_or_default(),
        connector.metadata.name.as_deref().unwrap_or_default()
    );
    if !ctx.offset_reads.start(&key) {
        return;
    }
    let ctx = ctx.clone();
    let connector = connector.clone();
    // In the reconcile's span, which names the connector.
    tokio::spawn(
        async move {
            let slot = ctx.offset_reads.slot().await;
            if let Err(e) = refresh_offsets(&ctx, &connector).await {
                tracing::warn!(error = %e, "could not write the connector's offsets to its status");
            }
            drop(slot);
            ctx.offset_reads.finish(&key);
        }
        .in_current_span(),
    );
}

/// Reads the connector's offsets from Kafka, and writes the summary to `status.offsets` and
/// the per-partition figures to the metrics. A failure to read is shown in
/// `status.offsets.error`.
pub async fn refresh_offsets(ctx: &Context, connector: &KafkaConnector) -> Result<(), Error> {
    let now = Timestamp::now();
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let read = async {
        let config = kafka_config(&ctx.client, connector).await?;
        match (&connector.spec.sink, &connector.spec.source) {
            (Some(sink), _) => {
                let partitions = offset_store::read_sink_offsets(
                    &config,
                    &consumer_group(&namespace, &name),
                    sink,
                )
                .await?;
                let summary = OffsetsStatus {
                    partitions: partitions.iter().filter(|p| p.committed.is_some()).count() as i32,
                    lag: Some(partitions.iter().map(|p| p.lag()).sum()),
                    at: Some(Time(now)),
                    error: None,
                };
                ctx.metrics.set_sink_offsets(
                    &namespace,
                    &name,
                    partitions
                        .iter()
                        .map(|p| SinkPartitionOffset {
                            topic: p.topic.clone(),
                            partition: p.partition,
                            committed: p.committed,
                            lag: p.lag(),
                        })
                        .collect(),
                );
                Ok::<_, Error>(summary)
            }
            (None, Some(_)) => {
                let stored = offset_store::read_source_offsets(
                    &config,
                    DEFAULT_OFFSETS_TOPIC,
                    &namespace,
                    &name,
                )
                .await?;
                ctx.metrics
                    .set_source_offsets(&namespace, &name, stored.len() as i64);
                Ok(OffsetsStatus {
                    partitions: stored.len() as i32,
                    lag: None,
                    at: Some(Time(now)),
                    error: None,
                })
            }
            (None, None) => Ok(OffsetsStatus::default()),
        }
    };
    let summary = match read.await {
        Ok(summary) => summary,
        Err(error) => {
            tracing::warn!(error = %error, "could not read the connector's offsets");
            unreadable(
                connector.status.as_ref().and_then(|s| s.offsets.as_ref()),
                &error,
                now,
            )
        }
    };
    status_writer::write(&ctx.client, connector, StatusPart::Offsets(&summary)).await
}

/// `status.offsets` after a failed read (pure): the error and the time of the attempt; the
/// partition count of the last read is kept, its lag is not (it is no longer known).
pub fn unreadable(
    previous: Option<&OffsetsStatus>,
    error: &Error,
    now: Timestamp,
) -> OffsetsStatus {
    OffsetsStatus {
        lag: None,
        at: Some(Time(now)),
        error: Some(error.to_string()),
        ..previous.cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_keeps_no_lag_and_says_why() {
        let previous: OffsetsStatus =
            serde_yaml::from_str("{partitions: 3, lag: 120, at: '2026-11-22T10:00:00Z'}").unwrap();
        let now: Timestamp = "2026-11-22T10:01:00Z".parse().unwrap();
        let error = Error::Offsets {
            action: "reading the committed offsets of consumer group ferry.shop.orders".into(),
            message: "Local: Broker transport failure".into(),
        };
        let s = unreadable(Some(&previous), &error, now);
        assert_eq!(s.lag, None);
        assert_eq!(s.partitions, 3);
        assert_eq!(s.at, Some(Time(now)));
        assert_eq!(
            s.error.as_deref(),
            Some(
                "reading the committed offsets of consumer group ferry.shop.orders: Local: Broker transport failure"
            )
        );
        assert_eq!(unreadable(None, &error, now).partitions, 0);
    }
}
