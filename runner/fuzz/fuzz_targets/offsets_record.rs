//! Records of the source offsets topic (`ferry-offsets`), which any client with write access
//! to it can write: the operator and every source task read them. Any key and value is
//! applied or skipped, never a panic.
#![no_main]

use std::collections::BTreeMap;

use ferry_kafka::offsets_topic::apply_offset_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], Option<&[u8]>)| {
    let (key, value) = input;
    let mut offsets = BTreeMap::new();
    let prefix = ferry_kafka::offsets_topic::format::key_prefix("shop", "orders");
    apply_offset_record(&prefix, key, value, &mut offsets);
    // A record that applied reads back from what the writer would write.
    for (partition, offset) in &offsets {
        let key = ferry_kafka::offsets_topic::format::offset_key("shop", "orders", partition);
        let value = ferry_kafka::offsets_topic::format::offset_value(offset);
        let mut again = BTreeMap::new();
        apply_offset_record(&prefix, key.as_bytes(), Some(&value), &mut again);
        assert_eq!(
            again, offsets,
            "an applied offset does not write back to itself"
        );
    }
});
