//! Connect's value syntax (`Values.parseString`, read by the simple header converter and by
//! `insertHeader.valueLiteral`) on any text, and the text the converter writes for what it
//! read: never a panic. (The text is not a round trip in Connect either: `1.0` reads as the
//! integer 1.)
#![no_main]

use ferry_runner::data::values::{convert_to_string, parse_string};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parsed = parse_string(text);
    if let Ok(written) = convert_to_string(parsed.schema.as_deref(), &parsed.value) {
        let _ = parse_string(&written);
    }
});
