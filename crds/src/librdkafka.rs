//! librdkafka's configuration properties, as the library the tasks link prints them
//! (`rd_kafka_conf_properties_show`): the names `spec.kafka.config` may use and what each
//! value must be. The CRD's CEL rules on `spec.kafka.config` are made from this table, so a
//! key or value librdkafka would refuse is refused at `kubectl apply` rather than failing the
//! task. `ferry-kafka`'s tests hold the table to the linked library and compare the rules'
//! verdicts with librdkafka's own on sample values.

#[rustfmt::skip]
mod properties;

pub use properties::{PROPERTIES, VERSION};

/// One librdkafka property.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Property {
    /// Its name, e.g. `linger.ms`.
    pub name: &'static str,
    /// What its value must be.
    pub value: PropertyValue,
}

/// What a property's value must be, as librdkafka reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PropertyValue {
    /// A decimal integer in `min..=max`.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A number in `min..=max`.
    Float {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// `true` or `false` (librdkafka also takes `t`, `f`, `1`, `0`, in any case).
    Boolean,
    /// One of these words, in any case.
    Enum(&'static [&'static str]),
    /// Free text (strings, comma-separated flags, pattern lists).
    Text,
    /// Set through librdkafka's C API (a callback or a pointer), never from a string.
    DedicatedApi,
    /// Not in the librdkafka the tasks run, which was built without what it needs (the
    /// reason, as librdkafka gives it).
    NotBuiltIn(&'static str),
}

/// The property called `name`, if librdkafka has one.
pub fn property(name: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.name == name)
}

/// The words librdkafka takes for `true` and `false` (compared without case).
pub const BOOLEAN_WORDS: &[&str] = &["true", "false", "t", "f", "1", "0"];
