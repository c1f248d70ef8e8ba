//! Java `SimpleDateFormat` patterns (the `timestampConverter` and `timestampRouter` formats)
//! and the dates they read from record fields: any pattern is accepted or refused, any text
//! parsed or refused, any instant written.
#![no_main]

use ferry_runner::data::date_format::DateFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, i64)| {
    let (pattern, text, millis) = input;
    let Ok(format) = DateFormat::new(pattern) else {
        return;
    };
    let _ = format.parse(text);
    let _ = format.format(millis);
});
