//! Connect's JSON converter, with and without schemas, for keys, values and headers: reading
//! any bytes never panics, and what it reads writes back to a canonical form that reads back
//! to the same value (write(read(write(read(x)))) == write(read(x))).
#![no_main]

use std::sync::OnceLock;

use ferry_crds::pipeline::Converters;
use ferry_runner::convert::RecordConverters;
use ferry_runner::record::RawRecord;
use libfuzzer_sys::fuzz_target;

fn converters() -> &'static [RecordConverters; 2] {
    static CONVERTERS: OnceLock<[RecordConverters; 2]> = OnceLock::new();
    CONVERTERS.get_or_init(|| {
        let of = |yaml: &str| {
            let spec: Converters = serde_yaml::from_str(yaml).expect("converters spec");
            RecordConverters::from_spec(Some(&spec)).expect("converters")
        };
        [
            of("{key: {json: {schemas: true}}, value: {json: {schemas: true}}, header: {json: {schemas: true}}}"),
            of("{key: {json: {schemas: false}}, value: {json: {schemas: false}}, header: {json: {schemas: false}}}"),
        ]
    })
}

fn raw(bytes: &[u8]) -> RawRecord {
    RawRecord {
        topic: "t".into(),
        partition: Some(0),
        offset: Some(1),
        timestamp: None,
        key: Some(bytes.to_vec()),
        value: Some(bytes.to_vec()),
        headers: vec![("h".into(), Some(bytes.to_vec()))],
    }
}

fuzz_target!(|input: (bool, &[u8])| {
    let (schemaless, bytes) = input;
    let c = &converters()[usize::from(schemaless)];
    let Ok(record) = c.decode(raw(bytes)) else {
        return;
    };
    let once = c
        .encode(&record)
        .unwrap_or_else(|e| panic!("a value read from JSON cannot be written: {e}"));
    let again = c
        .decode(once.clone())
        .unwrap_or_else(|e| panic!("the converter cannot read what it wrote: {e}"));
    let twice = c.encode(&again).expect("written once, written again");
    assert_eq!(once.value, twice.value, "the value's JSON is not canonical");
    assert_eq!(once.key, twice.key, "the key's JSON is not canonical");
    assert_eq!(
        once.headers, twice.headers,
        "the header's JSON is not canonical"
    );
});
