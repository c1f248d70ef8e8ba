//! Names only the operator uses: annotations on task pods and the runner image default.
//! Names shared with the runner and the tools live in `ferry_crds::names`.

pub use ferry_crds::names::*;

/// Annotation on a task pod: the connector's `metadata.generation` when the pod was created.
/// A task that failed with a configuration error is retried once the generation differs.
pub const ANNOTATION_GENERATION: &str = "ferry.rs/generation";
/// Annotation on a task pod: the task's consecutive restarts when the pod was created (see
/// the `restart` module).
pub const ANNOTATION_RESTARTS: &str = "ferry.rs/restarts";

/// Name of the runner container in a task pod.
pub const RUNNER_CONTAINER: &str = "runner";
/// Name of the admin port of the runner container.
pub const ADMIN_PORT_NAME: &str = "admin";
/// User and group the runner runs as (the distroless `nonroot` user).
pub const RUNNER_UID: i64 = 65532;

/// Runner image used when a connector names none and `--runner-image` is not given.
pub fn default_runner_image() -> String {
    format!("ferry/runner:{}", env!("CARGO_PKG_VERSION"))
}
