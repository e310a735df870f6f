//! The SFTP questions: the server's host key (shown and confirmed, or given by fingerprint;
//! never trusted on first use) and the key to log in with (given, or generated and installed
//! on the server, or shown with where to install it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use kopi_docka_core::config::{self, RemoteBackend, RepositoryLocation};
use kopi_docka_core::repo::{self, sftp};

use super::ask::Asker;
use crate::cli::SetupArgs;
use crate::commands::UsageError;

/// What the SFTP questions decided.
#[derive(Debug, Default)]
pub struct SftpChoice {
    /// `[repository.options]` for the server: `host-key`, `key`, `ssh-config`.
    pub options: BTreeMap<String, String>,
    /// The key kopi-docka logs in with, when setup generated (or reused) it.
    pub key: Option<PathBuf>,
}

/// For an SFTP location: the host key to pin and the login key. Other locations: nothing.
pub async fn options(
    location: &RepositoryLocation,
    args: &SetupArgs,
    ask: &Asker<'_>,
    env: &config::Environment,
    config_dir: &Path,
) -> anyhow::Result<SftpChoice> {
    let mut choice = SftpChoice::default();
    let RepositoryLocation::Remote {
        backend: RemoteBackend::Sftp,
        ..
    } = location
    else {
        return Ok(choice);
    };
    let options = &mut choice.options;
    if let Some(file) = &args.ssh_config {
        let file = std::path::absolute(file)?;
        options.insert(sftp::SSH_CONFIG.to_owned(), file.display().to_string());
    }
    let ssh_dir = env.state_dir().ssh_dir();
    let host_key = pin_host_key(location, options, args, ask, &ssh_dir).await?;
    options.insert(sftp::HOST_KEY.to_owned(), host_key);

    if let Some(key) = &args.ssh_key {
        let key = std::path::absolute(key)?;
        options.insert("key".to_owned(), key.display().to_string());
        return Ok(choice);
    }
    let path = config_dir.join("ssh").join(sftp::GENERATED_KEY);
    let generate = ask.yes_no(
        args.generate_ssh_key.then_some(true),
        &format!(
            "Generate an SSH key for kopi-docka ({}) and install it on the server?",
            path.display()
        ),
        false,
    )?;
    if !generate {
        return Ok(choice);
    }
    let comment = format!("kopi-docka@{}", repo::this_hostname());
    let pair = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || sftp::generate_key(&path, &comment)).await??
    };
    ask.printer.notice(&format!(
        "  {} {}",
        if pair.generated {
            "generated"
        } else {
            "reusing"
        },
        pair.private.display()
    ));
    let spec = repo::backend_spec(location, options)?;
    let may_ask = ask.interactive;
    ask.printer.notice(
        "Installing the public key on the server (ssh may ask for the password of that user):",
    );
    let installed = {
        let (spec, ssh_dir, public) = (spec.clone(), ssh_dir.clone(), pair.public.clone());
        tokio::task::spawn_blocking(move || sftp::install_key(&spec, &ssh_dir, &public, may_ask))
            .await?
    };
    match installed {
        Ok(resolved) => ask.printer.notice(&format!(
            "  installed in ~{}/.ssh/authorized_keys on {}",
            resolved.user, resolved.host
        )),
        Err(error) => {
            let resolved = {
                let ssh_dir = ssh_dir.clone();
                tokio::task::spawn_blocking(move || sftp::resolve_location(&spec, &ssh_dir))
                    .await??
            };
            let how = format!(
                "add this line to ~{user}/.ssh/authorized_keys on {host} (as {user}; the \
                 directory 0700, the file 0600):\n\n    {key}\n\nfor example with `ssh-copy-id \
                 -i {public} -p {port} {user}@{hostname}`",
                user = resolved.user,
                host = resolved.host,
                key = pair.public,
                public = pair.private.with_extension("pub").display(),
                port = resolved.port,
                hostname = resolved.hostname,
            );
            if !ask.interactive {
                bail!(UsageError(format!(
                    "the key could not be installed ({error}); nothing was written. Install it \
                     yourself: {how}, then run setup again with --ssh-key {}",
                    pair.private.display()
                )));
            }
            ask.printer.notice(&format!(
                "  the key could not be installed: {error}\n  Install it yourself: {how}"
            ));
            ask.text(None, "Press Enter when it is installed", "")?;
        }
    }
    options.insert("key".to_owned(), pair.private.display().to_string());
    choice.key = Some(pair.private);
    Ok(choice)
}

/// The server's host key, chosen by fingerprint (`--host-key`) or shown and confirmed.
async fn pin_host_key(
    location: &RepositoryLocation,
    options: &BTreeMap<String, String>,
    args: &SetupArgs,
    ask: &Asker<'_>,
    ssh_dir: &Path,
) -> anyhow::Result<String> {
    let spec = repo::backend_spec(location, options)?;
    let ssh_dir = ssh_dir.to_path_buf();
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
    let chosen = match (&args.host_key, ask.interactive) {
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
            let pin = ask.yes_no(
                None,
                &format!(
                    "The SFTP server {} ({}) has the host key {}. Compare it on the server with \
                     `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. Pin this key?",
                    resolved.host,
                    resolved.address(),
                    key.fingerprint
                ),
                false,
            )?;
            if !pin {
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
    Ok(chosen.key.clone())
}
