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
    /// Back up units: warm pass, brief stop, cold pass, restart
    #[command(after_help = crate::exit::HELP)]
    Backup(BackupArgs),
    /// What `backup` would do (same as `backup --dry-run`); touches nothing
    #[command(after_help = crate::exit::HELP)]
    DryRun(BackupArgs),
    /// List kopi-docka's snapshots in the repository
    #[command(after_help = crate::exit::HELP)]
    Snapshots(SnapshotsArgs),
    /// Check everything backups depend on; exits 1 when a check fails
    #[command(after_help = crate::exit::HELP)]
    Doctor(JsonArgs),
    /// Past backup runs, from this host's records (or the repository's when those are gone)
    #[command(after_help = crate::exit::HELP)]
    History(HistoryArgs),
    /// Administration: the repository, systemd units and the daemon
    #[command(visible_alias = "advanced")]
    Admin(AdminArgs),
    /// Show version information
    Version(VersionArgs),
}

/// `kopi-docka history`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only runs that included this unit (and only its line)
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,
    /// Only failed runs (or failed units, with --unit)
    #[arg(long)]
    pub failed: bool,
    /// Only the newest N runs
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Only runs started at or after DATE (2026-11-01, 2026-11-01T02:00:00+01:00, or 7d ago)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Statistics per unit instead of the list
    #[arg(long)]
    pub stats: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka snapshots`
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only snapshots of this unit
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,
    /// Only snapshots taken by this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka admin`
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to administer.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `kopi-docka admin <command>`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The repository: create, inspect, verify, clean up
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Start the containers a killed backup left stopped (from the journal), and nothing else
    #[command(after_help = crate::exit::HELP)]
    RestartStopped,
    /// systemd units, the daemon, and their state
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Notifications ([notifications] in the config)
    #[command(subcommand)]
    Notification(NotificationCommand),
}

/// `kopi-docka admin notification <command>`
#[derive(Debug, Subcommand)]
pub enum NotificationCommand {
    /// Send a test message to every configured target; exits 1 when one fails
    #[command(after_help = crate::exit::HELP)]
    Test(JsonArgs),
}

/// `kopi-docka admin service <command>`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write the systemd units (backup service, timer, daemon); never overwrites your edits
    #[command(after_help = crate::exit::HELP)]
    WriteUnits(WriteUnitsArgs),
    /// Run as a daemon: back up on its own schedule, talk to systemd (Type=notify, watchdog)
    #[command(after_help = crate::exit::HELP)]
    Daemon(DaemonArgs),
    /// Timer and service state, next and last run, lock state
    #[command(after_help = crate::exit::HELP)]
    Status(JsonArgs),
}

/// `kopi-docka admin service write-units`
#[derive(Debug, Args)]
pub struct WriteUnitsArgs {
    /// Where to write the units
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub output_dir: PathBuf,
    /// The timer's calendar expression.
    #[arg(
        long,
        value_name = "ONCALENDAR",
        help = "The timer's OnCalendar expression [default: [daemon] schedule, else *-*-* 02:00:00]"
    )]
    pub schedule: Option<String>,
    /// Replace unit files that differ from what kopi-docka would write (your edits are lost)
    #[arg(long)]
    pub force: bool,
}

/// `kopi-docka admin service daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// When to back up.
    #[arg(
        long,
        value_name = "SCHEDULE",
        help = "When to back up: OnCalendar expression or `every <span>` [default: [daemon] schedule]"
    )]
    pub schedule: Option<String>,
    /// Back up only this unit (repeatable) [default: [daemon] units, else all]
    #[arg(long = "unit", value_name = "NAME")]
    pub units: Vec<String>,
}

/// `kopi-docka backup`
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct BackupArgs {
    /// Back up only this unit (repeatable); default: all units
    #[arg(long = "unit", value_name = "NAME")]
    pub units: Vec<String>,
    /// What to include [default: from [backup] scope in the config]
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Plain cold backup: no snapshot while the unit runs
    #[arg(long)]
    pub no_warm_pass: bool,
    /// Show what would be stopped and backed up; touch nothing
    #[arg(long)]
    pub dry_run: bool,
    /// When another run is going on, wait for it instead of exiting with code 11
    #[arg(long)]
    pub wait: bool,
    /// With --dry-run: also measure how much data each volume and bind holds
    #[arg(long)]
    pub sizes: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `--scope`
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScopeArg {
    /// Volumes and binds only
    Minimal,
    /// Plus recipe (compose, env, inspect) and networks
    Standard,
    /// Plus the engine's own configuration
    Full,
}

/// `kopi-docka admin repo <command>`
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create the repository at the configured location (never overwrites one)
    #[command(after_help = crate::exit::HELP)]
    Init(JsonArgs),
    /// Show whether the repository is reachable and what it holds
    #[command(after_help = crate::exit::HELP)]
    Status(JsonArgs),
    /// Verify the repository's structure, and optionally read and verify its data
    #[command(after_help = crate::exit::HELP)]
    Check(CheckArgs),
    /// Apply the retention policy ([retention]) and remove unreferenced data
    #[command(after_help = crate::exit::HELP)]
    Prune(PruneArgs),
    /// Replace the repository password (a new random one unless --new-password-file)
    #[command(after_help = crate::exit::HELP)]
    ChangePassword(ChangePasswordArgs),
    /// Sizes and counts
    #[command(after_help = crate::exit::HELP)]
    Stats(JsonArgs),
}

/// Commands whose only option is `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka admin repo check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read and verify this percentage of the stored data (0-100)
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub read_data_subset: Option<f64>,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka admin repo prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka admin repo change-password`
#[derive(Debug, Args)]
pub struct ChangePasswordArgs {
    /// Read the new password from this file (mode 0600) instead of generating one
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err("must be more than 0 and at most 100".into())
    }
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
