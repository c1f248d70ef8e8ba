//! Configuration problems found while building converters and transforms from a spec.
#![warn(missing_docs)]

/// A configuration problem, with the path of the offending field, e.g.
/// `spec.transforms[1].cast.spec`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Path of the offending field, starting at `spec.`.
    pub field: String,
    /// What is wrong with it and what would be accepted.
    pub message: String,
}

impl ConfigError {
    /// A problem with the field at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<ferry_kafka::ConfigProblem> for ConfigError {
    fn from(p: ferry_kafka::ConfigProblem) -> Self {
        Self {
            field: p.field,
            message: p.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field() {
        let e = ConfigError::new("spec.transforms[1].cast.spec", "must not be empty");
        assert_eq!(
            e.to_string(),
            "spec.transforms[1].cast.spec: must not be empty"
        );
    }
}
