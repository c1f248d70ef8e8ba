//! The container sandbox: a private mount namespace per container, where volumes appear at
//! their `mountPath`, the termination-message file at its path, `/` is read-only when asked,
//! and the process runs as `runAsUser`/`runAsGroup`.
//!
//! Everything that allocates happens in the parent ([`Sandbox::new`], [`prepare_mount_points`]);
//! the code run between `fork` and `exec` ([`Sandbox::enter`]) only makes async-signal-safe
//! system calls on pre-built C strings.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One bind mount into the container's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Host path (a volume directory, a file in it for `subPath`, or a host path).
    pub source: PathBuf,
    /// Path inside the container.
    pub target: PathBuf,
    /// Remount read-only.
    pub read_only: bool,
}

/// What to set up in the child before `exec`.
#[derive(Debug, Default)]
pub struct SandboxSpec {
    /// Bind mounts, in order.
    pub mounts: Vec<Mount>,
    /// Remount `/` read-only (`readOnlyRootFilesystem`).
    pub read_only_root: bool,
    /// Working directory (after the mounts, so it may be inside a volume).
    pub working_dir: PathBuf,
    /// `runAsUser`.
    pub uid: Option<u32>,
    /// `runAsGroup` (defaults to the uid's primary group 0 as in Kubernetes).
    pub gid: Option<u32>,
    /// Supplemental groups (`fsGroup`, `supplementalGroups`).
    pub groups: Vec<u32>,
    /// Join this existing mount namespace (exec probes) instead of building a new one.
    pub join_namespace_of: Option<u32>,
}

/// A sandbox prepared in the parent, ready to be entered in the child.
#[derive(Debug)]
pub struct Sandbox {
    mounts: Vec<(CString, CString, bool)>,
    read_only_root: bool,
    working_dir: CString,
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
    groups: Vec<libc::gid_t>,
    join: Option<OwnedFd>,
}

/// Why a sandbox cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kubelet lacks the privileges to build mount namespaces.
    #[error("the local kubelet runs as uid {0}, not root: it cannot give containers their own mount namespace with the volumes mounted (run the stack as root)")]
    NotRoot(u32),
    /// A path contains a NUL byte.
    #[error("path {0:?} contains a NUL byte")]
    NulInPath(PathBuf),
    /// A mount point could not be created.
    #[error("cannot create mount point {path}: {source}")]
    MountPoint {
        /// The mount point.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The mount namespace of a running container could not be opened.
    #[error("cannot open the mount namespace of pid {pid}: {source}")]
    Namespace {
        /// The container's pid.
        pid: u32,
        /// The I/O error.
        source: io::Error,
    },
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::NulInPath(path.to_path_buf()))
}

/// Whether the kubelet can build sandboxes (it must be root).
pub fn check_privileges() -> Result<(), SandboxError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        Ok(())
    } else {
        Err(SandboxError::NotRoot(euid))
    }
}

/// Creates the mount points of `mounts` on the host (an empty directory, or an empty file
/// when the source is a file), as the kubelet's runtime does before starting a container.
pub fn prepare_mount_points(mounts: &[Mount]) -> Result<(), SandboxError> {
    for mount in mounts {
        let error = |source| SandboxError::MountPoint {
            path: mount.target.clone(),
            source,
        };
        let source_is_dir = std::fs::metadata(&mount.source)
            .map(|m| m.is_dir())
            .unwrap_or(true);
        if std::fs::symlink_metadata(&mount.target).is_ok() {
            continue;
        }
        if source_is_dir {
            std::fs::create_dir_all(&mount.target).map_err(error)?;
        } else {
            if let Some(parent) = mount.target.parent() {
                std::fs::create_dir_all(parent).map_err(error)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&mount.target)
                .map_err(error)?;
        }
    }
    Ok(())
}

impl Sandbox {
    /// Prepares `spec` (allocations, namespace file descriptors) in the parent.
    pub fn new(spec: SandboxSpec) -> Result<Self, SandboxError> {
        check_privileges()?;
        let mounts = spec
            .mounts
            .iter()
            .map(|m| Ok((cstring(&m.source)?, cstring(&m.target)?, m.read_only)))
            .collect::<Result<Vec<_>, SandboxError>>()?;
        let join = match spec.join_namespace_of {
            Some(pid) => Some(
                std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                    .map(OwnedFd::from)
                    .map_err(|source| SandboxError::Namespace { pid, source })?,
            ),
            None => None,
        };
        Ok(Sandbox {
            mounts,
            read_only_root: spec.read_only_root,
            working_dir: cstring(&spec.working_dir)?,
            uid: spec.uid,
            gid: spec.gid.or(spec.uid.map(|_| 0)),
            groups: spec.groups,
            join,
        })
    }

    /// Enters the sandbox. Runs in the forked child before `exec`: only async-signal-safe
    /// system calls, no allocation. On failure the step and path are written to the
    /// container's log (stderr) and the errno is returned to the parent.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: every call below is an async-signal-safe system call on pointers to
        // NUL-terminated strings owned by `self`, which outlives the call.
        unsafe {
            check(
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ),
                b"prctl(PR_SET_PDEATHSIG)",
                None,
            )?;
            if let Some(fd) = &self.join {
                check(
                    libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNS),
                    b"setns(mount namespace)",
                    None,
                )?;
            } else {
                check(
                    libc::unshare(libc::CLONE_NEWNS),
                    b"unshare(CLONE_NEWNS)",
                    None,
                )?;
                let root = c"/";
                check(
                    libc::mount(
                        std::ptr::null(),
                        root.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ),
                    b"making / private",
                    None,
                )?;
                for (source, target, read_only) in &self.mounts {
                    check(
                        libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ),
                        b"bind-mounting a volume at",
                        Some(target),
                    )?;
                    if *read_only {
                        check(
                            libc::mount(
                                std::ptr::null(),
                                target.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                                std::ptr::null(),
                            ),
                            b"remounting read-only",
                            Some(target),
                        )?;
                    }
                }
                if self.read_only_root {
                    check(
                        libc::mount(
                            std::ptr::null(),
                            root.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                            std::ptr::null(),
                        ),
                        b"remounting / read-only (readOnlyRootFilesystem)",
                        None,
                    )?;
                }
            }
            check(
                libc::chdir(self.working_dir.as_ptr()),
                b"changing to the working directory",
                Some(&self.working_dir),
            )?;
            if let Some(gid) = self.gid {
                check(
                    libc::setgroups(self.groups.len(), self.groups.as_ptr()),
                    b"setgroups",
                    None,
                )?;
                check(libc::setgid(gid), b"setgid (runAsGroup)", None)?;
            }
            if let Some(uid) = self.uid {
                check(libc::setuid(uid), b"setuid (runAsUser)", None)?;
            }
        }
        Ok(())
    }
}

/// Turns a failed system call into an error, telling the container log what failed.
fn check(result: libc::c_int, step: &[u8], path: Option<&CString>) -> io::Result<()> {
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    let write = |bytes: &[u8]| {
        // SAFETY: write(2) on stderr with a valid buffer is async-signal-safe.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    };
    write(b"ferry-kubelet: container setup failed: ");
    write(step);
    if let Some(path) = path {
        write(b" ");
        write(path.as_bytes());
    }
    write(b"\n");
    Err(error)
}
