//! The validation corpus of the end-to-end tests (`e2e/tests/corpus`), whose verdicts are
//! checked there against a real API server, admitted offline by [`ferry_crds::admission`]:
//! every valid resource is admitted, parses with the Rust types and survives a round trip;
//! every invalid one is refused with the error its first line names (`# expect: ...`), as the
//! API server refuses it.

use std::path::{Path, PathBuf};

use ferry_crds::admission::admit;

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

fn value(path: &Path, text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

#[test]
fn valid_corpus_is_admitted_parses_and_round_trips() {
    let files = corpus("valid");
    assert!(files.len() >= 10, "only {} valid corpus files", files.len());
    for (path, text) in files {
        let admitted = admit(&value(&path, &text)).unwrap_or_else(|v| {
            panic!("{} is refused: {v:#?}", path.display());
        });
        let kc: KafkaConnector = serde_json::from_value(admitted)
            .unwrap_or_else(|e| panic!("{} does not parse once admitted: {e}", path.display()));
        // What the operator checks: the connector as the Rust types write it.
        let again = ferry_crds::admission::check(&kc);
        assert!(again.is_empty(), "{}: {again:#?}", path.display());
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
fn invalid_corpus_is_refused_offline_with_the_expected_error() {
    let files = corpus("invalid");
    assert!(
        files.len() >= 30,
        "only {} invalid corpus files",
        files.len()
    );
    let mut failures = Vec::new();
    for (path, text) in files {
        let expect = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .map(str::trim)
            .unwrap_or_else(|| {
                panic!("{}: the first line must be `# expect: ...`", path.display())
            });
        match admit(&value(&path, &text)) {
            Ok(_) => failures.push(format!(
                "{} is admitted; expected: {expect}",
                path.display()
            )),
            Err(violations) => {
                let said: Vec<String> = violations.iter().map(ToString::to_string).collect();
                if !said.iter().any(|v| v.contains(expect)) {
                    failures.push(format!(
                        "{} is refused, but not with the expected error\n  expected: {expect}\n  got:      {}",
                        path.display(),
                        said.join("\n            ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
