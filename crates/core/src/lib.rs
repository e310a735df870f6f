//! kopi-docka-core: everything kopi-docka does, without a terminal.
//!
//! This crate never prints and never reads argv. The `kopi-docka` binary turns arguments into
//! calls here and renders what comes back.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod account;
pub mod backup;
pub mod bootstrap;
pub mod config;
pub mod config_file;
pub mod daemon;
pub mod docker;
pub mod doctor;
pub mod dr;
pub mod durable;
pub mod error;
mod failpoint;
pub mod fs_snapshot;
pub mod history;
pub mod hooks;
pub mod lock;
pub mod migrate;
pub mod monitor;
pub mod notify;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod schedule;
pub mod state;
pub mod stop;
pub mod systemd;
pub mod tailscale;
pub mod unit;
pub mod unit_log;

/// This library's version, reported by `kopi-docka version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
