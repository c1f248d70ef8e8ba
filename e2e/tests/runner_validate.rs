//! `ferry-runner validate` on a corpus of connector files: every bad file exits 78 and names
//! each offending field (one `# expect: <text>` line per problem in the file); every good
//! file exits 0. Offline: needs the runner binary, not the stack.

use std::path::{Path, PathBuf};
use std::process::Command;

fn runner() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/ferry-runner")
}

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/runner_validate")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(runner())
        .arg("validate")
        .arg("-f")
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (cargo build -p ferry-runner)",
                runner().display()
            )
        });
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_bad_file_names_each_field() {
    let files = corpus("bad");
    assert!(
        files.len() >= 20,
        "the corpus has {} bad files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let (code, stdout) = validate(file);
        if code != Some(78) {
            failures.push(format!(
                "{}: exit {code:?}, expected 78\n{stdout}",
                file.display()
            ));
            continue;
        }
        for e in expected {
            if !stdout.lines().any(|l| l.starts_with(e) || l.contains(e)) {
                failures.push(format!(
                    "{}: no line names {e:?} in:\n{stdout}",
                    file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_files_pass() {
    for file in corpus("good") {
        let (code, stdout) = validate(&file);
        assert_eq!(code, Some(0), "{}: {stdout}", file.display());
    }
}
