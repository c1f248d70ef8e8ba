//! Every resource the API server accepts (the valid corpus of the end-to-end tests, checked
//! there against a real API server) is also read by the Rust types the operator and the
//! runner use, and survives a round trip.

use std::path::Path;

use ferry_crds::KafkaConnector;

#[test]
fn valid_corpus_parses_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/tests/corpus/valid");
    let mut count = 0;
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable corpus file");
        let kc: KafkaConnector = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        assert!(
            kc.spec.is_source() != kc.spec.is_sink(),
            "{}: exactly one of source and sink",
            path.display()
        );
        let written = serde_yaml::to_string(&kc).expect("the connector serializes");
        let again: KafkaConnector = serde_yaml::from_str(&written).unwrap_or_else(|e| {
            panic!(
                "{} does not parse after a round trip: {e}\n{written}",
                path.display()
            )
        });
        assert_eq!(again.spec, kc.spec, "{}", path.display());
        count += 1;
    }
    assert!(
        count >= 10,
        "only {count} valid corpus files in {}",
        dir.display()
    );
}
