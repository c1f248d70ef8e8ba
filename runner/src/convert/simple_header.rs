//! Kafka Connect's `SimpleHeaderConverter`: header values are written as text
//! (`Values.convertToString`) and read back with their type inferred (`Values.parseString`).

use crate::data::values;
use crate::data::{DataError, Schema, SchemaAndValue, SchemaType, Value};

/// Header bytes to data.
pub fn to_connect(bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
    let Some(bytes) = bytes else {
        return Ok(SchemaAndValue::null());
    };
    let text = String::from_utf8_lossy(bytes).into_owned();
    if text.is_empty() {
        return Ok(SchemaAndValue::new(
            Schema::new(SchemaType::String),
            Value::String(text),
        ));
    }
    Ok(values::parse_string(&text))
}

/// Header data to bytes.
pub fn from_connect(data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
    if data.value.is_null() {
        return Ok(None);
    }
    Ok(Some(
        values::convert_to_string(data.schema.as_ref(), &data.value)?.into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_with_inferred_types() {
        let read = to_connect(Some(b"42")).unwrap();
        assert_eq!(read.value, Value::Int8(42));
        assert_eq!(from_connect(&read).unwrap().unwrap(), b"42");
        let read = to_connect(Some(b"hello world")).unwrap();
        assert_eq!(read.value, Value::String("hello world".into()));
        assert_eq!(to_connect(None).unwrap(), SchemaAndValue::null());
        assert_eq!(
            to_connect(Some(b"")).unwrap().value,
            Value::String(String::new())
        );
        assert_eq!(from_connect(&SchemaAndValue::null()).unwrap(), None);
    }
}
