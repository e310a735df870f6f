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
    /// The repository location, over the config's.
    #[arg(
        long,
        global = true,
        value_name = "LOCATION",
        help = "Repository to use instead of the config's (a path, or sftp:, s3:, b2:, azure:, \
                gs:, rest:, rclone:, webdav:) [else: $KOPI_DOCKA_REPOSITORY, else [repository] \
                location]"
    )]
    pub repo: Option<String>,
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr: no progress, no info lines (the result still prints)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
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
    /// List restore points (or single snapshots) in the repository
    #[command(after_help = crate::exit::HELP)]
    Snapshots(SnapshotsArgs),
    /// Restore a unit (recipe, networks, volumes, binds) and start it; or drill a restore
    #[command(after_help = crate::exit::HELP)]
    Restore(RestoreArgs),
    /// Guided setup: where backups go (tested before anything is written), schedule,
    /// notifications
    #[command(after_help = crate::exit::HELP)]
    Setup(Box<SetupArgs>),
    /// Disaster recovery: an encrypted bundle to reach the repository from a bare machine
    #[command(visible_alias = "dr", after_help = crate::exit::HELP)]
    DisasterRecovery(DrArgs),
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
    /// List single snapshots instead of restore points
    #[arg(long)]
    pub raw: bool,
    /// Print JSON on stdout instead of text (restore points and snapshots)
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka restore`
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct RestoreArgs {
    /// The unit to restore (stack or standalone container name); asked for on a terminal
    #[arg(long, value_name = "NAME")]
    pub unit: Option<String>,
    /// The restore point (see `kopi-docka snapshots`)
    #[arg(long, value_name = "ID", conflicts_with = "latest")]
    pub backup_id: Option<String>,
    /// The newest complete restore point (the default when no --backup-id is given)
    #[arg(long)]
    pub latest: bool,
    /// Also restore an incomplete point (one whose backup did not save every part)
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Restore a backup made by another host [default: this host]
    #[arg(long, value_name = "HOST")]
    pub from_host: Option<String>,
    /// Only this volume (repeatable)
    #[arg(long = "volume", value_name = "NAME")]
    pub volumes: Vec<String>,
    /// Only this bind mount source (repeatable)
    #[arg(long = "bind", value_name = "SRC")]
    pub binds: Vec<std::path::PathBuf>,
    /// Only these parts
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    pub only: Vec<PartArg>,
    /// Restore the files into this directory instead of into Docker (touches no container)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["compose_dir", "drill"])]
    pub target_dir: Option<std::path::PathBuf>,
    /// Where the compose files go [default: the original project directory]
    #[arg(long, value_name = "DIR")]
    pub compose_dir: Option<std::path::PathBuf>,
    /// Values for redacted secrets of the saved configuration (`NAME=value` lines)
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,
    /// Recreate existing networks whose configuration differs (only when nothing is attached)
    #[arg(long)]
    pub recreate_networks: bool,
    /// Do not start the unit afterwards (containers stopped for the restore stay stopped)
    #[arg(long)]
    pub no_start: bool,
    /// Restore into a sandbox, verify, start, check health, remove it: production untouched
    #[arg(long)]
    pub drill: bool,
    /// Show what would be done and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Also accept what the recipe asks beyond a plain restore (files outside the project
    /// directory, privileged containers, host namespaces, devices, host-internal binds)
    #[arg(long)]
    pub trust_recipe: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka setup`
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct SetupArgs {
    /// Ask nothing; take everything from the flags and the defaults
    #[arg(long)]
    pub non_interactive: bool,
    /// The kind of location [default: from --repository or --tailscale-peer, else asked, else
    /// local]
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<crate::commands::SetupKind>,
    /// Repository location (a path, or sftp:, s3:, b2:, azure:, gs:, rest:, rclone:, webdav:)
    /// [default: /var/lib/kopi-docka/repository for root]
    #[arg(long, value_name = "LOCATION")]
    pub repository: Option<String>,
    /// Credentials of a cloud location: a file (mode 0600) of NAME=value lines
    /// (`AWS_ACCESS_KEY_ID=...`, see docs/repository.md); copied to repository.env beside the
    /// config [interactive: asked, secrets without echo]
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<std::path::PathBuf>,
    /// B2 (and S3 when asked piece by piece): the S3 endpoint URL
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// rclone: the rclone.conf to use [default: rclone's own]
    #[arg(long, value_name = "FILE")]
    pub rclone_config: Option<std::path::PathBuf>,
    /// Tailscale: the peer (host name or DNS name in the tailnet) to use as the SFTP server
    #[arg(long, value_name = "NAME")]
    pub tailscale_peer: Option<String>,
    /// SFTP/Tailscale without --repository: the user to log in as [default: $USER]
    #[arg(long, value_name = "USER")]
    pub remote_user: Option<String>,
    /// SFTP/Tailscale without --repository: the ssh port [default: 22]
    #[arg(long, value_name = "PORT")]
    pub remote_port: Option<u16>,
    /// SFTP/Tailscale without --repository: the directory on the server
    /// [default: /srv/kopi-docka/<host>]
    #[arg(long, value_name = "PATH")]
    pub remote_path: Option<String>,
    /// Existing file with the repository password [default: generate repository.password
    /// beside the config, or reuse the one there]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Host name to record backups under (set it on a replacement machine)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// SFTP: private key file to log in with [default: the ssh config's, or ssh's defaults]
    #[arg(long, value_name = "FILE", conflicts_with = "generate_ssh_key")]
    pub ssh_key: Option<std::path::PathBuf>,
    /// SFTP: generate an ed25519 key (`<config dir>/ssh/id_ed25519`, reused when there) and
    /// install it in `~USER/.ssh/authorized_keys` on the server [interactive: asked]
    #[arg(long)]
    pub generate_ssh_key: bool,
    /// SFTP: an ssh configuration file to use instead of ~/.ssh/config
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<std::path::PathBuf>,
    /// SFTP: the server's host key to pin, as its fingerprint (SHA256:...) or the key itself;
    /// setup checks that the server offers it [interactive: shown and asked]
    #[arg(long, value_name = "FINGERPRINT")]
    pub host_key: Option<String>,
    /// Daily backups to keep
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Weekly backups to keep
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Monthly backups to keep
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// When backups run: a systemd calendar expression, or `none` [default: *-*-* 02:00:00]
    #[arg(long, value_name = "CALENDAR")]
    pub schedule: Option<String>,
    /// Write the systemd units into this directory [default: /etc/systemd/system when root
    /// with systemd, else the command to run is shown]
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<std::path::PathBuf>,
    /// A file (mode 0600) whose first line is the notification URL; a test message is sent
    /// before anything is written [interactive: asked without echo]
    #[arg(long, value_name = "FILE")]
    pub notify_url_file: Option<std::path::PathBuf>,
    /// Write a disaster-recovery bundle to FILE after the setup [interactive: asked]
    #[arg(long, value_name = "FILE")]
    pub dr_bundle: Option<std::path::PathBuf>,
    /// The passphrase file of the bundle [default: `$KOPI_DOCKA_DR_PASSPHRASE`, or generated
    /// and shown on a terminal]
    #[arg(long, value_name = "FILE")]
    pub dr_passphrase_file: Option<std::path::PathBuf>,
    /// Replace an existing config (it is kept as a .bak)
    #[arg(long)]
    pub force: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka disaster-recovery`
#[derive(Debug, Args)]
pub struct DrArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DrCommand,
}

/// Disaster-recovery subcommands.
#[derive(Debug, Subcommand)]
pub enum DrCommand {
    /// Write the encrypted bundle (config, repository password, recovery instructions)
    #[command(after_help = crate::exit::HELP)]
    Export(DrExportArgs),
    /// Decrypt a bundle, install its config and secrets, connect; optionally restore every unit
    #[command(after_help = crate::exit::HELP)]
    Import(DrImportArgs),
}

/// `kopi-docka disaster-recovery export`
#[derive(Debug, Args)]
pub struct DrExportArgs {
    /// Where to write it (never overwritten) [default: ./kopi-docka-dr-<host>-<time>.age]
    #[arg(value_name = "FILE", conflicts_with = "stream")]
    pub file: Option<std::path::PathBuf>,
    /// Write the bundle to stdout (the passphrase notice goes to stderr)
    #[arg(long)]
    pub stream: bool,
    /// The passphrase file.
    #[arg(
        long,
        value_name = "FILE",
        help = "Read the passphrase from this file instead of generating one [else: \
                $KOPI_DOCKA_DR_PASSPHRASE]"
    )]
    pub passphrase_file: Option<std::path::PathBuf>,
    /// Also include the SSH private key of an SFTP repository
    #[arg(long)]
    pub include_ssh_key: bool,
    /// Print JSON on stdout instead of text (not with --stream)
    #[arg(long, conflicts_with = "stream")]
    pub json: bool,
}

/// `kopi-docka disaster-recovery import`
#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches"
)]
pub struct DrImportArgs {
    /// The bundle file
    #[arg(value_name = "BUNDLE")]
    pub bundle: std::path::PathBuf,
    /// The passphrase file.
    #[arg(
        long,
        value_name = "FILE",
        help = "Read the passphrase from this file [else: $KOPI_DOCKA_DR_PASSPHRASE, else asked \
                on the terminal]"
    )]
    pub passphrase_file: Option<std::path::PathBuf>,
    /// Restore every unit's newest restore point and start it
    #[arg(long)]
    pub restore_all: bool,
    /// With --restore-all: also accept what recipes ask beyond a plain restore (privileged
    /// containers, host namespaces, devices, files outside the project directory)
    #[arg(long, requires = "restore_all")]
    pub trust_recipe: bool,
    /// Show what would be installed and restored; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// A part of a restore point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartArg {
    /// Compose and env files.
    Recipe,
    /// Networks.
    Networks,
    /// Named volumes.
    Volumes,
    /// Bind mount sources.
    Binds,
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
    RestartStopped(JsonArgs),
    /// The configuration: show (secrets masked), validate, edit, import from Kopi-Docka
    #[command(subcommand)]
    Config(ConfigCommand),
    /// systemd units, the daemon, and their state
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Notifications ([notifications] in the config)
    #[command(subcommand)]
    Notification(NotificationCommand),
    /// The previous content restores kept beside volumes and binds: list, remove
    #[command(subcommand)]
    RollbackCopies(RollbackCopiesCommand),
    /// Print the shell completion script (bash, zsh, fish) on stdout
    Completions(CompletionsArgs),
    /// Write the man pages (one per command) into DIR, or print kopi-docka(1) on stdout
    #[command(after_help = crate::exit::HELP)]
    Man(ManArgs),
}

/// `kopi-docka admin rollback-copies`
#[derive(Debug, Subcommand)]
pub enum RollbackCopiesCommand {
    /// List the rollback copies restores kept (where, for which unit and point, size, age)
    List(JsonArgs),
    /// Remove rollback copies (all, or those older than --older-than)
    Prune(RollbackPruneArgs),
}

/// `kopi-docka admin rollback-copies prune`
#[derive(Debug, Args)]
pub struct RollbackPruneArgs {
    /// Only copies older than this: a span back from now (7d, 12h) or a date (2026-11-01)
    #[arg(long, value_name = "WHEN")]
    pub older_than: Option<String>,
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// `kopi-docka admin completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// A shell with completions.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShellArg {
    /// GNU bash (install into /usr/share/bash-completion/completions/kopi-docka)
    Bash,
    /// zsh (install as _kopi-docka into a directory of $fpath)
    Zsh,
    /// fish (install into /usr/share/fish/vendor_completions.d/kopi-docka.fish)
    Fish,
}

/// `kopi-docka admin man`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages (created if missing; existing pages are replaced)
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON on stdout instead of text (with DIR: the pages written)
    #[arg(long, requires = "dir")]
    pub json: bool,
}

/// `kopi-docka admin config`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets masked
    Show {
        /// Print JSON on stdout instead of TOML
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration; exit code 2 with the file, line and key when it is invalid
    Validate {
        /// Print JSON on stdout instead of text
        #[arg(long)]
        json: bool,
    },
    /// Edit a copy with $EDITOR; it replaces the config only when valid (the old one kept)
    Edit {
        /// Print JSON on stdout instead of text (the result; the editor still runs)
        #[arg(long)]
        json: bool,
    },
    /// Map a Kopi-Docka (Python) JSON config onto ours; print it, or install it with --write
    ImportKopiDocka {
        /// The Kopi-Docka config file (JSON)
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Install it at the config path instead of printing it
        #[arg(long)]
        write: bool,
        /// Replace an existing config (kept as .bak)
        #[arg(long)]
        force: bool,
        /// Print JSON on stdout instead of text (the config text, notes, the file written)
        #[arg(long)]
        json: bool,
    },
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
    #[arg(
        long,
        value_name = "DIR",
        help = "Where to write the units [default: /etc/systemd/system; with --user ~/.config/systemd/user]"
    )]
    pub output_dir: Option<PathBuf>,
    /// User-level units (backup service and timer) for the `--user` manager of a rootless setup
    #[arg(long)]
    pub user: bool,
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
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
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
    /// Units to back up, as the seed orchestrator took them: `backup all`, `backup cryptpad
    /// nextcloud` (the same as --unit)
    #[arg(value_name = "UNIT")]
    pub names: Vec<String>,
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
    /// Print JSON on stdout instead of text
    #[arg(long)]
    pub json: bool,
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

impl Cli {
    /// Whether the command was given `--json`: its report, and the error that may end it, are
    /// then written as JSON. Exhaustive, so a new command decides.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Units(args) => args.json,
            Command::Backup(args) | Command::DryRun(args) => args.json,
            Command::Snapshots(args) => args.json,
            Command::Restore(args) => args.json,
            Command::Setup(args) => args.json,
            Command::DisasterRecovery(dr) => match &dr.command {
                DrCommand::Export(args) => args.json,
                DrCommand::Import(args) => args.json,
            },
            Command::Doctor(args) => args.json,
            Command::History(args) => args.json,
            Command::Admin(admin) => match &admin.command {
                AdminCommand::Repo(repo) => match repo {
                    RepoCommand::Init(args)
                    | RepoCommand::Status(args)
                    | RepoCommand::Stats(args) => args.json,
                    RepoCommand::Check(args) => args.json,
                    RepoCommand::Prune(args) => args.json,
                    RepoCommand::ChangePassword(args) => args.json,
                },
                AdminCommand::Completions(_) => false,
                AdminCommand::Config(config) => match config {
                    ConfigCommand::Show { json }
                    | ConfigCommand::Validate { json }
                    | ConfigCommand::Edit { json }
                    | ConfigCommand::ImportKopiDocka { json, .. } => *json,
                },
                AdminCommand::Service(service) => match service {
                    ServiceCommand::Status(args) => args.json,
                    ServiceCommand::WriteUnits(args) => args.json,
                    ServiceCommand::Daemon(_) => false,
                },
                AdminCommand::RestartStopped(args)
                | AdminCommand::Notification(NotificationCommand::Test(args))
                | AdminCommand::RollbackCopies(RollbackCopiesCommand::List(args)) => args.json,
                AdminCommand::RollbackCopies(RollbackCopiesCommand::Prune(args)) => args.json,
                AdminCommand::Man(args) => args.json,
            },
            Command::Version(args) => args.json,
        }
    }
}
