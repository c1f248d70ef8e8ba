//! Kafka Connect's `SimpleHeaderConverter`: header values are written as text
//! (`Values.convertToString`) and read back with their type inferred (`Values.parseString`).

use crate::data::values;
use crate::data::{DataError, Schema, SchemaAndValue, SchemaType, Value};

/// Header bytes to data.
pub fn read(bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
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
pub fn write(data: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
    if data.value.is_null() {
        return Ok(None);
    }
    Ok(Some(
        values::convert_to_string(data.schema.as_deref(), &data.value)?.into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_with_inferred_types() {
        let number = read(Some(b"42")).unwrap();
        assert_eq!(number.value, Value::Int8(42));
        assert_eq!(write(&number).unwrap().unwrap(), b"42");
        let text = read(Some(b"hello world")).unwrap();
        assert_eq!(text.value, Value::String("hello world".into()));
        assert_eq!(read(None).unwrap(), SchemaAndValue::null());
        assert_eq!(read(Some(b"")).unwrap().value, Value::String(String::new()));
        assert_eq!(write(&SchemaAndValue::null()).unwrap(), None);
    }
}
