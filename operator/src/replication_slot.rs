//! The replication slot of a `postgresCdc` connector: where PostgreSQL keeps the connector's
//! position, and the WAL it has not confirmed yet. Deleting the connector leaves the slot
//! (re-created with the same name, the connector continues where it stopped) unless
//! `spec.offsets.deleteOnRemoval` is true: then the slot is dropped with the stored offsets,
//! once the task pods are gone, so that it no longer holds WAL on the server.

use ferry_crds::plugins::postgres_cdc::PostgresCdcSource;
use ferry_crds::plugins::SourcePlugin;
use ferry_crds::KafkaConnector;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::Error;
use crate::kafka_client::secret_value;

/// What [`drop_slot`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotCleanup {
    /// The connector has no replication slot (not a `postgresCdc` source).
    NotApplicable,
    /// The slot was dropped, or did not exist; in words.
    Done(String),
    /// A process still reads the slot (a stopping task): try again shortly.
    Active(String),
}

/// Drops slot `$1` unless a process reads it; one row per slot found: whether it was active
/// (and so left in place).
const DROP_IF_IDLE: &str = "SELECT active, CASE WHEN active THEN false \
     ELSE pg_drop_replication_slot(slot_name) IS NULL END \
     FROM pg_replication_slots WHERE slot_name = $1";

/// The `postgresCdc` block of the connector, if it is one.
pub fn cdc_source(connector: &KafkaConnector) -> Option<&PostgresCdcSource> {
    match connector.spec.source.as_ref().map(|s| &s.plugin) {
        Some(SourcePlugin::PostgresCdc(cdc)) => Some(cdc),
        _ => None,
    }
}

/// Drops the connector's replication slot (see the module documentation).
pub async fn drop_slot(client: &Client, connector: &KafkaConnector) -> Result<SlotCleanup, Error> {
    let Some(cdc) = cdc_source(connector) else {
        return Ok(SlotCleanup::NotApplicable);
    };
    let namespace = connector.metadata.namespace.clone().unwrap_or_default();
    let name = connector.metadata.name.clone().unwrap_or_default();
    let slot = cdc.slot_name(&namespace, &name);
    let mut config = tokio_postgres::Config::new();
    config
        .host(&cdc.host)
        .port(cdc.port())
        .dbname(&cdc.database)
        .user(cdc.user())
        .application_name("ferry-operator")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(password) = &cdc.password {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        config.password(secret_value(&secrets, &namespace, &password.secret_key_ref).await?);
    }
    let failed = |message: String| Error::SlotCleanup {
        slot: slot.clone(),
        server: format!("{}:{}/{}", cdc.host, cdc.port(), cdc.database),
        message,
    };
    let (pg, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let connection = tokio::spawn(connection);
    let rows = pg
        .query(DROP_IF_IDLE, &[&slot])
        .await
        .map_err(|e| failed(e.to_string()));
    drop(pg);
    let _ = connection.await;
    let rows = rows?;
    Ok(match rows.first().map(|r| r.get::<_, bool>(0)) {
        None => SlotCleanup::Done(format!("replication slot {slot} did not exist")),
        Some(true) => SlotCleanup::Active(format!(
            "replication slot {slot} is still read by a stopping task"
        )),
        Some(false) => SlotCleanup::Done(format!("dropped replication slot {slot}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(source: &str) -> KafkaConnector {
        serde_yaml::from_str(&format!(
            "apiVersion: ferry.rs/v1alpha1\nkind: KafkaConnector\nmetadata: {{name: orders, namespace: shop}}\nspec:\n  kafka: {{bootstrapServers: 'k:9092'}}\n  source: {source}\n"
        ))
        .expect("connector parses")
    }

    #[test]
    fn only_postgres_cdc_sources_have_a_slot() {
        let cdc = connector("{postgresCdc: {host: db, database: shop, topicPrefix: shop}}");
        let source = cdc_source(&cdc).expect("a postgresCdc source");
        assert_eq!(source.slot_name("shop", "orders"), "ferry_shop_orders");
        let named = connector(
            "{postgresCdc: {host: db, database: shop, topicPrefix: shop, slotName: orders_slot}}",
        );
        assert_eq!(
            cdc_source(&named).map(|s| s.slot_name("shop", "orders")),
            Some("orders_slot".to_string())
        );
        let datagen = connector("{datagen: {topic: t}}");
        assert!(cdc_source(&datagen).is_none());
    }
}
