//! `kopi-docka setup`: a guided first setup. It asks where the backups go (every location
//! kind, with the fields and credentials each needs), pins an SFTP server's host key and can
//! generate and install an SSH key, tests the connection, and only then writes the config; then
//! the schedule (systemd units), a notification URL (a test message is sent first) and a
//! disaster-recovery bundle. Every question has a flag; `--non-interactive` asks nothing.
//!
//! Rules: nothing is written before the connection test passed (only an SSH key the user asked
//! for, under `<config dir>/ssh/`); the config and the private files it names are written
//! atomically with mode 0600 and rolled back together; a config that already exists is replaced
//! only with `--force` (the old one is kept as `*.bak`); an existing repository is connected to,
//! never initialised again; nothing is ever deleted. The orchestration (connection test, key
//! installation, units) lives in core; this module asks and renders.

mod ask;
mod location;
mod report;
mod sftp;

pub use location::Kind;

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::bootstrap::{self, Found, PrivateFile, SetupRequest};
use kopi_docka_core::config::{self, NotificationTarget, NotificationsConfig, RetentionConfig};
use kopi_docka_core::repo::{Password, Repo, RepoSettings};
use kopi_docka_core::{dr, notify, systemd};

use self::ask::Asker;
use self::location::Chosen;
use self::report::{SetupReport, Units};
use super::UsageError;
use crate::cli::{GlobalArgs, SetupArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;

/// The file name of the credentials env file setup writes beside the config.
const ENV_FILE: &str = "repository.env";
/// The file name of the notification URL file setup writes beside the config.
const NOTIFY_URL_FILE: &str = "notification.url";

/// Runs the setup.
pub async fn run(
    global: &GlobalArgs,
    args: &SetupArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let env = crate::settings::environment();
    let config_path = std::path::absolute(env.config_path(global.config.as_deref()).0)?;
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    if !interactive && !args.non_interactive {
        bail!(UsageError(
            "no terminal to ask on: run `kopi-docka setup --non-interactive --repository \
             LOCATION` (see --help)"
                .into()
        ));
    }
    refuse_to_replace(&config_path, args, &env)?;
    let ask = Asker {
        printer,
        interactive,
    };
    let dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let default_location = env.default_repository().display().to_string();

    // Where, and how to get in.
    let mut chosen = location::choose(args, &ask, &default_location)?;
    let location = config::RepositoryLocation::try_from(chosen.location.clone())
        .map_err(|e| UsageError(format!("repository location `{}`: {e}", chosen.location)))?;
    chosen.location = location.to_string();
    let ssh = sftp::options(&location, args, &ask, &env, &dir).await?;
    chosen.options.extend(ssh.options.clone());

    // What to keep, and the password.
    let retention = retention(args, &ask)?;
    let (password_file, generated) = password_file(args, &dir)?;
    let password_generated = generated.is_some();

    // When, and who hears about it.
    let schedule = schedule(args, &ask)?;
    let notification = notification(args, &ask).await?;

    let mut private_files = Vec::new();
    let env_file = chosen.credentials.take().map(|text| {
        let path = dir.join(ENV_FILE);
        private_files.push(PrivateFile {
            path: path.clone(),
            text,
        });
        path
    });
    let notify_file = notification.map(|url| {
        let path = dir.join(NOTIFY_URL_FILE);
        private_files.push(PrivateFile {
            path: path.clone(),
            text: format!("{url}\n"),
        });
        path
    });
    let text = render_config(&ConfigText {
        chosen: &chosen,
        password_file: &password_file,
        env_file: env_file.as_deref(),
        hostname: args.hostname.as_deref(),
        retention: &retention,
        schedule: schedule.as_deref(),
        notify_file: notify_file.as_deref(),
    });
    // Validate before anything is written.
    config::parse(&text, &config_path)?;
    let request = SetupRequest {
        config_path: config_path.clone(),
        text,
        password_file: password_file.clone(),
        new_password: generated,
        private_files,
    };

    test_connection(printer, &request, &env, &chosen.location).await?;

    let outcome = bootstrap::setup(request, env.clone(), Arc::new(CliProgress::new()))
        .await
        .context("setup changed nothing")?;
    let units = match &schedule {
        Some(calendar) => units(args, &ask, &env, &config_path, calendar)?,
        None => Units::NotScheduled,
    };
    let dr_bundle = dr_bundle(args, &ask, &env, &config_path).await;
    let report = SetupReport {
        config: config_path,
        repository: chosen.location.clone(),
        password_file,
        password_generated,
        repository_action: outcome.action,
        snapshots: outcome.snapshots,
        previous_config: outcome.previous_config,
        env_file,
        ssh_key: ssh.key,
        tailscale_peer: chosen.peer.as_ref().map(|p| p.name.clone()),
        schedule,
        units,
        notification: notify_file,
        dr_bundle: dr_bundle.ok().flatten(),
    };
    printer.report(&report)?;
    Ok(ExitCode::Ok)
}

/// A config that exists is replaced only with `--force`.
fn refuse_to_replace(
    config_path: &Path,
    args: &SetupArgs,
    env: &config::Environment,
) -> anyhow::Result<()> {
    if config_path.exists() && !args.force {
        let working = config::load(Some(config_path), env.clone()).is_ok();
        bail!(UsageError(format!(
            "{} already exists{}; keep it, or replace it with --force (it is kept as a .bak)",
            config_path.display(),
            if working { " and is valid" } else { "" }
        )));
    }
    Ok(())
}

/// The connection test (core's), with what it found on the screen.
async fn test_connection(
    printer: &Printer,
    request: &SetupRequest,
    env: &config::Environment,
    location: &str,
) -> anyhow::Result<()> {
    printer.notice(&format!("Testing the connection to {location} ..."));
    let found = bootstrap::check_connection(request, env.clone())
        .await
        .context("the connection test failed; nothing was written")?;
    printer.notice(&match found {
        Found::Nothing => "  reachable; no repository there yet: it will be created".to_owned(),
        Found::Repository { snapshots } => {
            format!("  found an existing repository ({snapshots} snapshots); it is kept")
        }
    });
    Ok(())
}

/// The password file to use and, when it must be created, the new password. An existing
/// `repository.password` beside the config is reused, never overwritten.
fn password_file(args: &SetupArgs, dir: &Path) -> anyhow::Result<(PathBuf, Option<Password>)> {
    if let Some(file) = &args.password_file {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        if !file.exists() {
            bail!(UsageError(format!(
                "--password-file {}: no such file (omit the flag to have one generated)",
                file.display()
            )));
        }
        return Ok((file, None));
    }
    let file = dir.join("repository.password");
    if file.exists() {
        return Ok((file, None));
    }
    Ok((file, Some(bootstrap::generate_password()?)))
}

fn retention(args: &SetupArgs, ask: &Asker<'_>) -> anyhow::Result<RetentionConfig> {
    let mut r = RetentionConfig::default();
    if let Some(n) = args.keep_daily {
        r.keep_daily = n;
    }
    if let Some(n) = args.keep_weekly {
        r.keep_weekly = n;
    }
    if let Some(n) = args.keep_monthly {
        r.keep_monthly = n;
    }
    if args.keep_daily.is_some() || !ask.interactive {
        return Ok(r);
    }
    loop {
        let answer = ask.text(
            None,
            "Keep daily / weekly / monthly backups",
            &format!("{} {} {}", r.keep_daily, r.keep_weekly, r.keep_monthly),
        )?;
        let numbers: Result<Vec<u32>, _> = answer.split_whitespace().map(str::parse).collect();
        if let Ok([d, w, m]) = numbers.as_deref() {
            (r.keep_daily, r.keep_weekly, r.keep_monthly) = (*d, *w, *m);
            return Ok(r);
        }
        ask.printer.notice(&format!(
            "  `{answer}`: give three numbers, such as `7 4 6`"
        ));
    }
}

/// The timer's calendar expression, or `None` for no schedule.
fn schedule(args: &SetupArgs, ask: &Asker<'_>) -> anyhow::Result<Option<String>> {
    let default = config::defaults::schedule().to_string();
    loop {
        let answer = ask.text(
            args.schedule.as_deref(),
            "When should backups run? (a systemd calendar such as `daily` or `*-*-* 02:00`; \
             `none`: not scheduled)",
            &default,
        )?;
        if answer == "none" {
            return Ok(None);
        }
        let valid = answer
            .parse::<kopi_docka_core::schedule::Schedule>()
            .is_ok_and(|s| s.on_calendar().is_some())
            || systemd::calendar_accepted(&answer);
        if valid {
            return Ok(Some(answer));
        }
        let message = format!(
            "`{answer}` is not a calendar expression systemd accepts (such as `daily`, \
             `*-*-* 02:00:00`, `Mon..Fri 22:30`)"
        );
        if args.schedule.is_some() || !ask.interactive {
            bail!(UsageError(format!("--schedule {message}")));
        }
        ask.printer.notice(&format!("  {message}"));
    }
}

/// A notification URL that a test message reached, or `None`.
async fn notification(args: &SetupArgs, ask: &Asker<'_>) -> anyhow::Result<Option<String>> {
    let from_file = match &args.notify_url_file {
        Some(file) => Some(
            kopi_docka_core::durable::read_private(file)
                .map_err(|e| UsageError(format!("--notify-url-file {}: {e}", file.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    loop {
        let url = match &from_file {
            Some(url) => Some(url.clone()),
            None => ask.secret(
                "Notification URL for failed backups (ntfys://..., mailtos://..., https://... \
                 webhook; empty: none)",
            )?,
        };
        let Some(url) = url else { return Ok(None) };
        let config = NotificationsConfig {
            targets: vec![NotificationTarget {
                url: Some(url.clone()),
                ..NotificationTarget::default()
            }],
            ..NotificationsConfig::default()
        };
        let host = args
            .hostname
            .clone()
            .unwrap_or_else(kopi_docka_core::repo::this_hostname);
        ask.printer.notice("Sending a test message ...");
        let delivery = notify::send_all(&config, &notify::test_message(&host)).await;
        match delivery.into_iter().next().and_then(|d| d.error) {
            None => {
                ask.printer.notice("  sent; check that it arrived");
                return Ok(Some(url));
            }
            Some(error) if from_file.is_some() || !ask.interactive => {
                bail!(UsageError(format!(
                    "the test notification failed: {error}; nothing was written. Fix the URL \
                     in --notify-url-file or leave the flag out"
                )))
            }
            Some(error) => ask.printer.notice(&format!(
                "  the test message failed: {error}\n  try again, or leave it empty"
            )),
        }
    }
}

/// Writes the systemd units (root with systemd, or `--unit-dir`), or says how to.
fn units(
    args: &SetupArgs,
    ask: &Asker<'_>,
    env: &config::Environment,
    config_path: &Path,
    calendar: &str,
) -> anyhow::Result<Units> {
    let command = format!(
        "kopi-docka --config {} admin service write-units",
        config_path.display()
    );
    let dir = match &args.unit_dir {
        Some(dir) => Some(dir.clone()),
        None if env.is_root && systemd::booted() => ask
            .yes_no(
                None,
                &format!(
                    "Write the systemd units into {}?",
                    systemd::units::DEFAULT_UNIT_DIR
                ),
                true,
            )?
            .then(|| PathBuf::from(systemd::units::DEFAULT_UNIT_DIR)),
        None => None,
    };
    let Some(dir) = dir else {
        let why = if env.is_root {
            "systemd is not running here"
        } else {
            "writing units needs root"
        };
        return Ok(Units::Command {
            why: why.into(),
            command: if env.is_root {
                command
            } else {
                format!("sudo {command}")
            },
        });
    };
    let loaded = config::load(Some(config_path), env.clone())?;
    let binary = std::env::current_exe().context("finding the kopi-docka binary")?;
    let written = systemd::units::write_for(
        &loaded,
        Some(config_path.to_path_buf()),
        binary,
        calendar.to_owned(),
        &dir,
        false,
    )?;
    Ok(Units::Written {
        installed: dir == Path::new(systemd::units::DEFAULT_UNIT_DIR),
        files: written.into_iter().map(|(path, _)| path).collect(),
    })
}

/// Writes a disaster-recovery bundle when asked to. A failure here does not undo the setup
/// (it worked): it is shown with the command to run later.
async fn dr_bundle(
    args: &SetupArgs,
    ask: &Asker<'_>,
    env: &config::Environment,
    config_path: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let wanted = ask.yes_no(
        args.dr_bundle.as_ref().map(|_| true),
        "Write a disaster-recovery bundle now (config, password and recovery notes, encrypted \
         with a passphrase)?",
        false,
    )?;
    if !wanted {
        return Ok(None);
    }
    let result = async {
        let passphrase = match dr::given_passphrase(args.dr_passphrase_file.as_deref())? {
            Some(p) => (p, false),
            None if ask.interactive => (dr::Passphrase::generate()?, true),
            None => bail!(UsageError(format!(
                "--dr-bundle: give --dr-passphrase-file FILE or set {}",
                dr::PASSPHRASE_ENV
            ))),
        };
        let loaded = config::load(Some(config_path), env.clone())?;
        let settings = RepoSettings::from_config(&loaded)?;
        // No progress bars between the questions: opening a new repository is quick.
        let repo = Repo::open(settings, Arc::new(kopi_docka_core::progress::Silent)).await?;
        let options = dr::ExportOptions {
            include_ssh_key: false,
        };
        let (bundle, info) = dr::build(&loaded, &repo, options).await?;
        let report = dr::export::write(
            &bundle,
            info,
            &passphrase.0,
            args.dr_bundle.clone(),
            passphrase.1,
        )?;
        if passphrase.1 {
            ask.printer
                .notice(&crate::render::passphrase_notice(&passphrase.0));
        }
        Ok(report.file)
    }
    .await;
    match result {
        Ok(file) => Ok(Some(file)),
        Err(error) => {
            ask.printer.notice(&format!(
                "The disaster-recovery bundle was not written: {error:#}\nWrite it later with \
                 `kopi-docka disaster-recovery export`."
            ));
            Err(error)
        }
    }
}

/// Everything the config file says.
struct ConfigText<'a> {
    chosen: &'a Chosen,
    password_file: &'a Path,
    env_file: Option<&'a Path>,
    hostname: Option<&'a str>,
    retention: &'a RetentionConfig,
    schedule: Option<&'a str>,
    notify_file: Option<&'a Path>,
}

fn render_config(c: &ConfigText<'_>) -> String {
    let path = |p: &Path| toml_string(&p.display().to_string());
    let mut out = String::from(
        "# Written by `kopi-docka setup`. Every key: docs/configuration.md\n[repository]\n",
    );
    // Writing into a String cannot fail.
    let _ = writeln!(out, "location = {}", toml_string(&c.chosen.location));
    let _ = writeln!(out, "password-file = {}", path(c.password_file));
    if let Some(file) = c.env_file {
        let _ = writeln!(out, "env-file = {}", path(file));
    }
    if let Some(file) = &c.chosen.rclone_config {
        let _ = writeln!(out, "rclone-config = {}", path(file));
    }
    if let Some(h) = c.hostname {
        let _ = writeln!(out, "hostname = {}", toml_string(h));
    }
    if !c.chosen.options.is_empty() {
        out.push_str("\n[repository.options]\n");
        for (key, value) in &c.chosen.options {
            let _ = writeln!(out, "{key} = {}", toml_string(value));
        }
    }
    let r = c.retention;
    let _ = write!(
        out,
        "\n[retention]\nkeep-last = {}\nkeep-daily = {}\nkeep-weekly = {}\nkeep-monthly = {}\n\
         keep-yearly = {}\n",
        r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly
    );
    if let Some(schedule) = c.schedule {
        let _ = write!(out, "\n[daemon]\nschedule = {}\n", toml_string(schedule));
    }
    if let Some(file) = c.notify_file {
        let _ = write!(
            out,
            "\n[[notifications.targets]]\nurl-file = {}\n",
            path(file)
        );
    }
    out
}

fn toml_string(s: &str) -> String {
    // serde_json's string escaping is valid TOML basic-string escaping.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}
