//! Configuration problems found while building converters and transforms from a spec.
#![warn(missing_docs)]

use std::fmt;

/// A configuration problem, with the path of the offending field, e.g.
/// `spec.transforms[1].cast.spec`.
#[derive(Clone, Debug, PartialEq, Eq)]
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

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

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
