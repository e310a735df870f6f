//! `kopi-docka setup`: writes a working configuration and connects to (or creates) the
//! repository. Interactive on a terminal, fully scriptable with `--non-interactive`.
//!
//! Rules: the config is written atomically with mode 0600; a config that already exists is
//! replaced only with `--force` (the old one is kept as `*.bak`); an existing repository at the
//! location is connected to, never initialised again; nothing is ever deleted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::bootstrap::{self, RepositoryAction, SetupRequest};
use kopi_docka_core::config::{self, RemoteBackend, RepositoryLocation, RetentionConfig};
use kopi_docka_core::repo::{self, Password, sftp};
use serde::Serialize;

use super::UsageError;
use crate::cli::{GlobalArgs, SetupArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::Render;

/// What the setup wrote and found.
#[derive(Serialize)]
struct SetupReport {
    config: PathBuf,
    repository: String,
    password_file: PathBuf,
    password_generated: bool,
    repository_action: RepositoryAction,
    snapshots: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_config: Option<PathBuf>,
}

/// Runs the setup.
pub async fn run(
    global: &GlobalArgs,
    args: &SetupArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let env = crate::settings::environment();
    let config_path = env.config_path(global.config.as_deref()).0;
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    if !interactive && !args.non_interactive {
        bail!(UsageError(
            "no terminal to ask on: run `kopi-docka setup --non-interactive --repository \
             LOCATION` (see --help)"
                .into()
        ));
    }
    if config_path.exists() && !args.force {
        let working = config::load(Some(&config_path), env.clone()).is_ok();
        bail!(UsageError(format!(
            "{} already exists{}; keep it, or replace it with --force (it is kept as a .bak)",
            config_path.display(),
            if working { " and is valid" } else { "" }
        )));
    }
    let dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let default_location = env.default_repository().display().to_string();
    let location = match (&args.repository, interactive) {
        (Some(l), _) => l.clone(),
        (None, true) => ask(printer, "Repository location", &default_location)?,
        (None, false) => default_location,
    };
    let location = RepositoryLocation::try_from(location.clone())
        .map_err(|e| UsageError(format!("repository location `{location}`: {e}")))?;
    let options = sftp_options(&location, args, interactive, printer, &env).await?;
    let retention = retention(args, interactive, printer)?;
    let (password_file, generated) = password_file(args, &dir)?;
    let password_generated = generated.is_some();
    let text = render_config(
        &location,
        &options,
        &password_file,
        args.hostname.as_deref(),
        &retention,
    );
    // Validate before anything is written.
    config::parse(&text, &config_path)?;

    let outcome = bootstrap::setup(
        SetupRequest {
            config_path: config_path.clone(),
            text,
            password_file: password_file.clone(),
            new_password: generated,
        },
        env,
        Arc::new(CliProgress::new()),
    )
    .await
    .context("setup changed nothing")?;
    let report = SetupReport {
        config: config_path,
        repository: location.to_string(),
        password_file,
        password_generated,
        repository_action: outcome.action,
        snapshots: outcome.snapshots,
        previous_config: outcome.previous_config,
    };
    printer.report(&report)?;
    Ok(ExitCode::Ok)
}

/// For an SFTP location: the key file, and the server's host key to pin, chosen by
/// fingerprint (`--host-key`) or shown and asked on a terminal; never taken on trust.
async fn sftp_options(
    location: &RepositoryLocation,
    args: &SetupArgs,
    interactive: bool,
    printer: &Printer,
    env: &config::Environment,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    let RepositoryLocation::Remote {
        backend: RemoteBackend::Sftp,
        ..
    } = location
    else {
        return Ok(options);
    };
    if let Some(key) = &args.ssh_key {
        let key = std::path::absolute(key)?;
        options.insert("key".to_owned(), key.display().to_string());
    }
    let spec = repo::backend_spec(location, &options)?;
    let ssh_dir = env.state_dir().ssh_dir();
    let (resolved, keys) =
        tokio::task::spawn_blocking(move || sftp::scan(&spec, &ssh_dir)).await??;
    let shown = keys
        .iter()
        .map(|k| {
            format!(
                "  {}  {}",
                k.fingerprint,
                k.key.split(' ').next().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let chosen = match (&args.host_key, interactive) {
        (Some(wanted), _) => sftp::select_host_key(&keys, wanted).ok_or_else(|| {
            UsageError(format!(
                "--host-key {wanted}: the server {} ({}) does not offer that key; it offers:\n\
                 {shown}\nCompare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the \
                 server; if they differ, someone may be intercepting the connection",
                resolved.host,
                resolved.address()
            ))
        })?,
        (None, true) => {
            let key = sftp::preferred_host_key(&keys)
                .ok_or_else(|| UsageError("the server offered no host key".into()))?;
            let answer = ask(
                printer,
                &format!(
                    "The SFTP server {} ({}) has the host key {}. Compare it on the server with \
                     `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. Pin this key? (yes/no)",
                    resolved.host,
                    resolved.address(),
                    key.fingerprint
                ),
                "no",
            )?;
            if !matches!(answer.trim(), "y" | "yes") {
                bail!(UsageError(
                    "the host key was not confirmed; nothing was written".into()
                ));
            }
            key
        }
        (None, false) => bail!(UsageError(format!(
            "the SFTP server {} ({}) offers these host keys:\n{shown}\nkopi-docka never trusts \
             a server on first use: check the fingerprint on the server (`ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`) and pass it with --host-key SHA256:...",
            resolved.host,
            resolved.address()
        ))),
    };
    options.insert(sftp::HOST_KEY.to_owned(), chosen.key.clone());
    Ok(options)
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

fn retention(
    args: &SetupArgs,
    interactive: bool,
    printer: &Printer,
) -> anyhow::Result<RetentionConfig> {
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
    if interactive && args.keep_daily.is_none() {
        let answer = ask(
            printer,
            "Keep daily / weekly / monthly backups",
            &format!("{} {} {}", r.keep_daily, r.keep_weekly, r.keep_monthly),
        )?;
        let numbers: Vec<u32> = answer
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| UsageError(format!("`{answer}`: give three numbers")))?;
        if let [d, w, m] = numbers[..] {
            (r.keep_daily, r.keep_weekly, r.keep_monthly) = (d, w, m);
        } else {
            bail!(UsageError(format!("`{answer}`: give three numbers")));
        }
    }
    Ok(r)
}

fn ask(printer: &Printer, question: &str, default: &str) -> anyhow::Result<String> {
    match printer.ask(&format!("{question} [{default}]:")) {
        Some(a) if a.is_empty() => Ok(default.to_owned()),
        Some(a) => Ok(a),
        None => bail!(UsageError("no answer on stdin".into())),
    }
}

fn render_config(
    location: &RepositoryLocation,
    options: &BTreeMap<String, String>,
    password_file: &Path,
    hostname: Option<&str>,
    r: &RetentionConfig,
) -> String {
    let mut out = String::from(
        "# Written by `kopi-docka setup`. Every key: docs/configuration.md\n[repository]\n",
    );
    let _ = writeln!(out, "location = {}", toml_string(&location.to_string()));
    let _ = writeln!(
        out,
        "password-file = {}",
        toml_string(&password_file.display().to_string())
    );
    if let Some(h) = hostname {
        let _ = writeln!(out, "hostname = {}", toml_string(h));
    }
    if !options.is_empty() {
        out.push_str("\n[repository.options]\n");
        for (key, value) in options {
            let _ = writeln!(out, "{key} = {}", toml_string(value));
        }
    }
    let _ = write!(
        out,
        "\n[retention]\nkeep-last = {}\nkeep-daily = {}\nkeep-weekly = {}\nkeep-monthly = {}\n\
         keep-yearly = {}\n",
        r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly
    );
    out
}

fn toml_string(s: &str) -> String {
    // serde_json's string escaping is valid TOML basic-string escaping.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl Render for SetupReport {
    fn human(&self) -> String {
        render(self)
    }
}

fn render(r: &SetupReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "wrote {} (mode 0600)", r.config.display());
    if let Some(b) = &r.previous_config {
        let _ = writeln!(out, "  the previous config is kept as {}", b.display());
    }
    match r.repository_action {
        RepositoryAction::Connected => {
            let _ = writeln!(
                out,
                "connected to the existing repository {} ({} snapshots kept)",
                r.repository, r.snapshots
            );
        }
        RepositoryAction::Created => {
            let _ = writeln!(out, "created the repository {}", r.repository);
        }
    }
    let _ = writeln!(out, "password file: {}", r.password_file.display());
    if r.password_generated {
        let _ = writeln!(
            out,
            "Keep a copy of the password elsewhere, or make a disaster-recovery bundle now:\n  \
             kopi-docka disaster-recovery export"
        );
    }
    let _ = writeln!(
        out,
        "Next: `kopi-docka units` to see what will be backed up, then `kopi-docka backup`."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    #[test]
    fn renders_a_created_repository() {
        assert_renders!(
            "setup_created",
            &SetupReport {
                config: "/etc/kopi-docka/config.toml".into(),
                repository: "/srv/backup/kopi-docka".into(),
                password_file: "/etc/kopi-docka/repository.password".into(),
                password_generated: true,
                repository_action: RepositoryAction::Created,
                snapshots: 0,
                previous_config: None,
            }
        );
    }

    #[test]
    fn renders_a_connected_repository() {
        assert_renders!(
            "setup_connected",
            &SetupReport {
                config: "/etc/kopi-docka/config.toml".into(),
                repository: "sftp:backup@nas.lan:/volume1/kopi-docka".into(),
                password_file: "/root/kopi-docka.password".into(),
                password_generated: false,
                repository_action: RepositoryAction::Connected,
                snapshots: 42,
                previous_config: Some(
                    "/etc/kopi-docka/config.toml.kopi-docka-20261122T030000Z.bak".into()
                ),
            }
        );
    }
}
