//! Error handling: tolerance, retries, dead letter queue (placeholder until the runtime lands).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Error handling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorHandling {}
