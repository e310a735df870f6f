//! The command line: clap types only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Compose-stack-aware cold backups of Docker hosts.
#[derive(Debug, Parser)]
#[command(name = "kopi-docka", version, after_help = crate::exit::HELP, propagate_version = true)]
pub struct Cli {
    /// Options accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file to use instead of the looked-up one.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "Config file [default: $KOPI_DOCKA_CONFIG, else /etc/kopi-docka/config.toml for \
                root, else $XDG_CONFIG_HOME/kopi-docka/config.toml]"
    )]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List backup units (stacks and standalone containers) with their mounts and coverage
    #[command(after_help = crate::exit::HELP)]
    Units(UnitsArgs),
    /// Show version information
    Version(VersionArgs),
}

/// `kopi-docka units`
#[derive(Debug, Args)]
pub struct UnitsArgs {
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka version`
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}
