//! The validation corpus of the end-to-end tests, whose verdicts are checked there against a
//! real API server, read offline: every accepted resource parses with the Rust types,
//! survives a round trip and passes [`ferry_crds::validation::validate`]; every refused one
//! fails to parse or has a violation. Offline checks (`ferry-runner validate`) thus refuse at
//! least what the API server refuses.

use std::path::{Path, PathBuf};

use ferry_crds::validation::validate;
use ferry_crds::KafkaConnector;

fn corpus(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../e2e/tests/corpus")
        .join(kind);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, String)> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a readable corpus file");
            (path, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn valid_corpus_parses_validates_and_round_trips() {
    let files = corpus("valid");
    assert!(files.len() >= 10, "only {} valid corpus files", files.len());
    for (path, text) in files {
        let kc: KafkaConnector = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let violations = validate(&kc);
        assert!(violations.is_empty(), "{}: {violations:?}", path.display());
        let written = serde_yaml::to_string(&kc).expect("the connector serializes");
        let again: KafkaConnector = serde_yaml::from_str(&written).unwrap_or_else(|e| {
            panic!(
                "{} does not parse after a round trip: {e}\n{written}",
                path.display()
            )
        });
        assert_eq!(again.spec, kc.spec, "{}", path.display());
    }
}

#[test]
fn invalid_corpus_is_refused_offline() {
    let files = corpus("invalid");
    assert!(
        files.len() >= 30,
        "only {} invalid corpus files",
        files.len()
    );
    let accepted: Vec<String> = files
        .into_iter()
        .filter(|(_, text)| {
            serde_yaml::from_str::<KafkaConnector>(text).is_ok_and(|kc| validate(&kc).is_empty())
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        accepted.is_empty(),
        "the API server refuses these, but they parse and pass ferry_crds::validation::validate:\n{}",
        accepted.join("\n")
    );
}
