//! Converters, transforms, predicates and error handling (placeholder until the API lands).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Converters for keys, values and headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Converters {}

/// One transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformSpec {
    /// Name of the transform, unique within the connector.
    pub name: String,
}
