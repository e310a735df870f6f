//! The built-in defaults that are not plain `Default` values.

use super::AbsolutePath;

/// Host-internal paths: the OS tree, runtime state and the engine's own data. `/` itself is
/// always skipped whatever this list says (it would include the repository).
pub const HOST_INTERNAL_PATHS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/boot",
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/log",
];

/// [`HOST_INTERNAL_PATHS`] as typed paths.
pub fn host_internal_paths() -> Vec<AbsolutePath> {
    HOST_INTERNAL_PATHS
        .iter()
        .map(|p| AbsolutePath(p.into()))
        .collect()
}

/// zstd level: 1 is on par with restic's speed on 2 cores, with a few percent less saving
/// than 3 (measured in the rustic spike).
pub fn compression() -> i32 {
    1
}

/// Repository path for root.
pub const ROOT_REPOSITORY: &str = "/var/lib/kopi-docka/repository";
/// State directory for root.
pub const ROOT_STATE: &str = "/var/lib/kopi-docka";
/// Cache directory for root.
pub const ROOT_CACHE: &str = "/var/cache/kopi-docka";
/// Config file for root.
pub const ROOT_CONFIG: &str = "/etc/kopi-docka/config.toml";
/// Default engine socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The daemon's and the timer's default schedule: every day at 02:00 local time
/// (`*-*-* 02:00:00`), when containers are least busy on most home servers.
pub fn schedule() -> crate::schedule::Schedule {
    crate::schedule::Schedule::daily_at(2, 0)
}
