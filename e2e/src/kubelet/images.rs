//! The image table: which local executable stands in for a container image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Maps image names (without tag or digest) to local executables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageTable {
    entries: BTreeMap<String, PathBuf>,
}

/// An `--image` flag that is not `name=/absolute/path`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --image {0:?}: expected NAME=/absolute/path/to/executable (for example ferry/runner=/repo/target/debug/ferry-runner)")]
pub struct InvalidImageMapping(pub String);

impl ImageTable {
    /// Builds the table from `name=/path` entries (the `--image` flags).
    pub fn parse<'a>(
        mappings: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidImageMapping> {
        let mut entries = BTreeMap::new();
        for mapping in mappings {
            let Some((name, path)) = mapping.split_once('=') else {
                return Err(InvalidImageMapping(mapping.to_string()));
            };
            let path = Path::new(path.trim());
            let name = repository(name.trim());
            if name.is_empty() || !path.is_absolute() {
                return Err(InvalidImageMapping(mapping.to_string()));
            }
            entries.insert(name.to_string(), path.to_path_buf());
        }
        Ok(ImageTable { entries })
    }

    /// The executable for `image`, ignoring its tag and digest and a `docker.io/` prefix.
    pub fn resolve(&self, image: &str) -> Option<&Path> {
        let repo = repository(image);
        let candidates = [
            Some(repo),
            repo.strip_prefix("docker.io/"),
            repo.strip_prefix("docker.io/library/"),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|name| self.entries.get(name).map(PathBuf::as_path))
    }

    /// The mapped image names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }
}

/// The repository part of an image reference: without `@digest` and without `:tag`
/// (a colon in the registry's host:port is kept).
pub fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(repo, _)| repo);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ImageTable {
        ImageTable::parse([
            "ferry/runner=/repo/target/debug/ferry-runner",
            "ferry/test-shell:1=/bin/sh",
        ])
        .expect("valid table")
    }

    #[test]
    fn resolves_with_and_without_tag_or_digest() {
        let t = table();
        let runner = Some(Path::new("/repo/target/debug/ferry-runner"));
        assert_eq!(t.resolve("ferry/runner"), runner);
        assert_eq!(t.resolve("ferry/runner:0.1.0"), runner);
        assert_eq!(t.resolve("ferry/runner@sha256:abcd"), runner);
        assert_eq!(t.resolve("docker.io/ferry/runner:latest"), runner);
        assert_eq!(t.resolve("ferry/test-shell"), Some(Path::new("/bin/sh")));
        assert_eq!(t.resolve("busybox"), None);
        assert_eq!(t.resolve("ferry/runner-other"), None);
    }

    #[test]
    fn keeps_registry_ports() {
        assert_eq!(
            repository("localhost:5000/ferry/runner"),
            "localhost:5000/ferry/runner"
        );
        assert_eq!(
            repository("localhost:5000/ferry/runner:v1"),
            "localhost:5000/ferry/runner"
        );
    }

    #[test]
    fn rejects_relative_paths_and_missing_equals() {
        assert!(ImageTable::parse(["ferry/runner=ferry-runner"]).is_err());
        assert!(ImageTable::parse(["ferry/runner"]).is_err());
        assert!(ImageTable::parse(["=/bin/sh"]).is_err());
    }
}
