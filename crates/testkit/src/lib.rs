//! Test support for kopi-docka's integration tests, shared by both crates.
//!
//! - [`Env`]: the real `kopi-docka` binary as one isolated installation (config, repository,
//!   state and cache in a temp dir), built with [`Env::builder`].
//! - [`docker`]: real Docker resources named `kdtest-<random>-...` that are removed on drop,
//!   even when the test panics. Docker tests run only with `KOPI_DOCKA_DOCKER_TESTS=1` (the
//!   README's test command sets it); with the switch on, an unreachable engine FAILS the test.
//! - [`events`]: the engine's events for a test's containers, read while the test runs, and
//!   its times parsed (orders are checked from timestamps, never from string comparison).
//! - [`process::LoggedChild`]: a background run whose log lines a test can wait for.
//! - [`servers`]: real storage servers (S3, REST, `WebDAV`, Azure, GCS) on loopback.
//! - [`sshd::Sshd`]: a real OpenSSH server on loopback for SFTP repositories.
//! - [`loopfs`]: loop-mounted btrfs and XFS (reflink) filesystems, once per test binary,
//!   unmounted when the process ends.
//! - [`btrfs_engine`]: a second Docker Engine with its data root on a loop-mounted btrfs (named
//!   volumes on btrfs), once per test binary, stopped by its PID when the process ends.
//! - [`tree`]: a tree holding every file kind and metadata aspect a restore must reproduce, and
//!   a comparison that lists every difference.
//!
//! Nothing here is a mock: every helper runs the real thing (binary, engine, `restic`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a panic is the failure report"
)]

pub mod btrfs_engine;
pub mod docker;
mod env;
pub mod events;
pub mod files;
pub mod loopfs;
pub mod podman;
pub mod process;
pub mod servers;
pub mod sshd;
pub mod tree;

pub use docker::{
    DockerResources, IDLE, IMAGE, docker, docker_tests_enabled, idle_with_volume, unique_prefix,
    volume_mountpoint,
};
pub use env::{Env, EnvBuilder, kopi_docka, kopi_docka_at, kopi_docka_std_at};
pub use events::{EngineEvents, Event, parse_time, started_at};
pub use files::{assert_not_leaked, copy_fixture, files_containing, fill_random, write_private};
pub use podman::Podman;
pub use process::{Finished, LoggedChild, Signal, restic, run, sigterm};
pub use sshd::Sshd;
