//! The CDC source's column decoders: PostgreSQL's text form of every mapped type (numbers,
//! decimals, dates, times, timestamps, bytea, arrays, enums) on any text.
#![no_main]

use ferry_runner::plugins::postgres_cdc::types::{parse, Kind};
use libfuzzer_sys::fuzz_target;

fn kinds() -> Vec<Kind> {
    let scalars = vec![
        Kind::Int16,
        Kind::Int32,
        Kind::Int64,
        Kind::Float32,
        Kind::Float64,
        Kind::Boolean,
        Kind::Text(None),
        Kind::Decimal {
            precision: 10,
            scale: 2,
        },
        Kind::Decimal {
            precision: 1000,
            scale: -5,
        },
        Kind::VariableDecimal,
        Kind::Date,
        Kind::Time { micros: false },
        Kind::Time { micros: true },
        Kind::Timestamp { micros: false },
        Kind::Timestamp { micros: true },
        Kind::ZonedTimestamp,
        Kind::ZonedTime,
        Kind::Bytes,
        Kind::Enum(vec!["a".into(), "b".into()]),
    ];
    let arrays: Vec<Kind> = scalars
        .iter()
        .cloned()
        .map(|k| Kind::Array(Box::new(k)))
        .collect();
    scalars.into_iter().chain(arrays).collect()
}

fuzz_target!(|input: (u8, &str)| {
    let (choice, text) = input;
    let kinds = kinds();
    let kind = &kinds[usize::from(choice) % kinds.len()];
    let _ = parse(kind, text);
});
