//! The `KafkaConnector` resource (placeholder until the API lands).
