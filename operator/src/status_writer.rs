//! The one writer of a connector's status: every status write of the operator goes through
//! [`write`], with server-side apply to the status subresource, forced.
//!
//! The status has three parts, each applied under its own field manager (all named here), so
//! that applying one part leaves the others alone (server-side apply removes the fields a
//! manager owned and no longer sends):
//! - [`StatusPart::Main`] (`ferry-operator`): everything the reconcile computes, including
//!   `status.autoscaler`;
//! - [`StatusPart::OffsetReset`] (`ferry-operator-offset-reset`): `status.offsetReset`, the
//!   record of the last offsets reset;
//! - [`StatusPart::Offsets`] (`ferry-operator-offsets`): `status.offsets`, the background
//!   read of the connector's offsets in Kafka.

use ferry_crds::names::{API_GROUP, API_VERSION, FIELD_MANAGER, KIND};
use ferry_crds::status::{OffsetResetStatus, OffsetsStatus};
use ferry_crds::{KafkaConnector, KafkaConnectorStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::error::Error;

/// Field manager of `status.offsetReset`.
pub const RESET_FIELD_MANAGER: &str = "ferry-operator-offset-reset";
/// Field manager of `status.offsets`.
pub const OFFSETS_FIELD_MANAGER: &str = "ferry-operator-offsets";

/// One part of the status, as written by one field manager.
#[derive(Clone, Copy, Debug)]
pub enum StatusPart<'a> {
    /// The status without `offsetReset` and `offsets` (those fields must be `None`).
    Main(&'a KafkaConnectorStatus),
    /// `status.offsetReset`.
    OffsetReset(&'a OffsetResetStatus),
    /// `status.offsets`.
    Offsets(&'a OffsetsStatus),
}

impl StatusPart<'_> {
    /// The field manager that owns this part.
    pub fn field_manager(&self) -> &'static str {
        match self {
            StatusPart::Main(_) => FIELD_MANAGER,
            StatusPart::OffsetReset(_) => RESET_FIELD_MANAGER,
            StatusPart::Offsets(_) => OFFSETS_FIELD_MANAGER,
        }
    }

    /// The `status` object to apply.
    fn body(&self) -> serde_json::Value {
        match self {
            StatusPart::Main(status) => serde_json::json!(status),
            StatusPart::OffsetReset(record) => serde_json::json!({"offsetReset": record}),
            StatusPart::Offsets(summary) => serde_json::json!({"offsets": summary}),
        }
    }
}

/// Whether the main part of the status differs from what is stored (pure): `next` is
/// compared with `previous` without the parts other field managers write.
pub fn main_part_changed(
    previous: Option<&KafkaConnectorStatus>,
    next: &KafkaConnectorStatus,
) -> bool {
    !previous.is_some_and(|p| {
        KafkaConnectorStatus {
            offset_reset: None,
            offsets: None,
            ..p.clone()
        } == *next
    })
}

/// Applies `part` to the status of `connector`.
pub async fn write(
    client: &Client,
    connector: &KafkaConnector,
    part: StatusPart<'_>,
) -> Result<(), Error> {
    let namespace = connector.metadata.namespace.as_deref().unwrap_or_default();
    let name = connector.metadata.name.as_deref().unwrap_or_default();
    let body = serde_json::json!({
        "apiVersion": format!("{API_GROUP}/{API_VERSION}"),
        "kind": KIND,
        "status": part.body(),
    });
    let api: Api<KafkaConnector> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::apply(part.field_manager()).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube(format!(
        "writing the status of connector {namespace}/{name}"
    )))?;
    Ok(())
}

/// Applies the main part of the status when it differs from what is stored.
pub async fn write_main_if_changed(
    client: &Client,
    connector: &KafkaConnector,
    next: &KafkaConnectorStatus,
) -> Result<(), Error> {
    if main_part_changed(connector.status.as_ref(), next) {
        write(client, connector, StatusPart::Main(next)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(yaml: &str) -> KafkaConnectorStatus {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_main_part_ignores_what_other_managers_write() {
        let stored = status(
            "state: Running\nlag: 3\noffsets: {partitions: 2, lag: 5}\noffsetReset: {appliedId: a}",
        );
        assert!(!main_part_changed(
            Some(&stored),
            &status("state: Running\nlag: 3")
        ));
        assert!(main_part_changed(Some(&stored), &status("state: Running")));
        assert!(main_part_changed(None, &status("state: Running")));
        assert_eq!(
            StatusPart::Offsets(&OffsetsStatus::default()).field_manager(),
            OFFSETS_FIELD_MANAGER
        );
        assert_eq!(
            StatusPart::OffsetReset(&OffsetResetStatus::default()).body(),
            serde_json::json!({"offsetReset": {"appliedId": ""}})
        );
    }
}
