//! Prints the `KafkaConnector` CustomResourceDefinition as YAML.
//!
//! `crdgen` prints it; `crdgen --write` writes it to every file the repository keeps it in
//! (`crds/kafkaconnector.yaml`, the Helm chart's `crds/` and the kustomize base), and what
//! admission offline reads of it (`crds/src/admission/schema.json`), and the chart's policy
//! that refuses connectors naming Secrets their authors may not read
//! (`helm/ferry/templates/secret-access-policy.yaml`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferry_crds::admission::{checks_json, CHECKS_FILE};
use ferry_crds::schema::{crd, crd_yaml, CRD_FILES};
use ferry_crds::secret_access;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn write_all(yaml: &str) -> Result<(), String> {
    let root = repo_root();
    for file in CRD_FILES {
        let path = root.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let write = match args.as_slice() {
        [] => false,
        [flag] if flag == "--write" => true,
        _ => {
            eprintln!(
                "usage: crdgen [--write]\n  prints the KafkaConnector CRD; --write updates {}",
                CRD_FILES.join(", ")
            );
            return ExitCode::from(2);
        }
    };
    let yaml = match crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("cannot render the CRD as YAML: {e}");
            return ExitCode::FAILURE;
        }
    };
    if write {
        if let Err(e) = write_all(&yaml) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        let checks = repo_root().join(CHECKS_FILE);
        if let Err(e) = std::fs::write(&checks, checks_json(&crd())) {
            eprintln!("cannot write {}: {e}", checks.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", checks.display());
        let template = repo_root().join(secret_access::HELM_TEMPLATE);
        let written = secret_access::helm_template()
            .map_err(|e| format!("cannot render the secret access policy: {e}"))
            .and_then(|text| {
                std::fs::write(&template, text)
                    .map_err(|e| format!("cannot write {}: {e}", template.display()))
            });
        if let Err(e) = written {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", template.display());
    } else {
        print!("{yaml}");
    }
    ExitCode::SUCCESS
}
