//! Source and sink plugin blocks (placeholder until the plugins land).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The external system a source connector reads (exactly one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SourcePlugin {
    /// Lines of a file.
    File {},
}

/// The external system a sink connector writes (exactly one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SinkPlugin {
    /// Lines of a file.
    File {},
}
