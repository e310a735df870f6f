//! User commands at fixed points of a unit's backup.
//!
//! Rules: a hook is an argv array run without a shell (container and unit names are never
//! interpolated into a command line); its program must be an absolute path that neither group
//! nor others may write (a writable hook run as root is a privilege escalation); it gets the
//! unit, the backup id and the point in its environment; it is killed after the timeout; its
//! output goes to the log, line by line.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::config::HookPoint;

/// What a hook is told through its environment.
#[derive(Debug, Clone)]
pub struct HookContext<'a> {
    /// `KOPI_DOCKA_UNIT`.
    pub unit: &'a str,
    /// `KOPI_DOCKA_UNIT_KIND`: `stack` or `standalone`.
    pub kind: &'a str,
    /// `KOPI_DOCKA_BACKUP_ID`.
    pub backup_id: &'a str,
    /// `KOPI_DOCKA_STATUS` (post-backup only): `success`, `partial` or `failed`.
    pub status: Option<&'a str>,
}

/// A hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program may not be run.
    #[error("{point} hook {program}: {reason}")]
    Refused {
        /// Hook point.
        point: HookPoint,
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// It ran and failed or timed out.
    #[error("{point} hook {program} {outcome}{output}", output = tail(output))]
    Failed {
        /// Hook point.
        point: HookPoint,
        /// The program.
        program: String,
        /// Exit status or timeout.
        outcome: String,
        /// The end of its stderr and stdout.
        output: String,
    },
}

fn tail(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let start = trimmed.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
    format!(": {}", &trimmed[start..])
}

/// Runs the hook of `point` of every set that has one, in order (global first, then the
/// unit's); stops at the first failure.
pub async fn run_point<'a>(
    sets: impl IntoIterator<Item = &'a crate::config::HookSet>,
    point: HookPoint,
    context: &HookContext<'_>,
    timeout: Duration,
) -> Result<(), HookError> {
    for set in sets {
        if let Some(argv) = set.get(point) {
            run(point, argv, context, timeout).await?;
        }
    }
    Ok(())
}

/// Runs one hook.
pub async fn run(
    point: HookPoint,
    argv: &[String],
    context: &HookContext<'_>,
    timeout: Duration,
) -> Result<(), HookError> {
    let Some((program, arguments)) = argv.split_first() else {
        return Ok(());
    };
    let refused = |reason: String| HookError::Refused {
        point,
        program: program.clone(),
        reason,
    };
    check_program(Path::new(program)).map_err(refused)?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .env("KOPI_DOCKA_HOOK", point.as_str())
        .env("KOPI_DOCKA_UNIT", context.unit)
        .env("KOPI_DOCKA_UNIT_KIND", context.kind)
        .env("KOPI_DOCKA_BACKUP_ID", context.backup_id)
        .env("KOPI_DOCKA_STATUS", context.status.unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::config::environment::remove_secrets(&mut command);
    // A script written a moment ago can be "text file busy" while another thread's fork still
    // holds its write descriptor until that child's exec: a short retry, not a failed hook.
    let mut attempt = 0;
    let mut child = loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.map_err(|e| refused(format!("cannot start: {e}")))?,
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(s) = stdout.as_mut() {
            // Output is for the log; unreadable bytes are not a reason to fail the hook.
            let _ = s.read_to_string(&mut out).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut err).await;
        }
        (out, err)
    };
    let finished = tokio::time::timeout(timeout, async {
        let (out, err) = collect.await;
        (child.wait().await, out, err)
    })
    .await;
    // On timeout, kill_on_drop ends the hook when `child` is dropped with the future.
    let Ok((status, out, err)) = finished else {
        return Err(HookError::Failed {
            point,
            program: program.clone(),
            outcome: format!(
                "did not finish within {}s and was killed",
                timeout.as_secs()
            ),
            output: String::new(),
        });
    };
    for line in out.lines().chain(err.lines()) {
        tracing::info!(hook = point.as_str(), unit = context.unit, "{line}");
    }
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(HookError::Failed {
            point,
            program: program.clone(),
            outcome: format!("failed ({status})"),
            output: format!("{err}{out}"),
        }),
        Err(e) => Err(refused(format!("cannot wait for it: {e}"))),
    }
}

/// The program must exist, be a file, and be writable only by its owner, who must be root or
/// us.
fn check_program(program: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(program).map_err(|e| format!("cannot use it: {e}"))?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}); run: chmod go-w {}",
            meta.mode() & 0o7777,
            program.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "belongs to uid {}, neither root nor the user running kopi-docka",
            meta.uid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    const CTX: HookContext<'static> = HookContext {
        unit: "app",
        kind: "stack",
        backup_id: "b1",
        status: None,
    };

    #[tokio::test]
    async fn environment_args_and_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let ok = script(
            dir.path(),
            "ok",
            &format!(
                "echo \"$KOPI_DOCKA_HOOK $KOPI_DOCKA_UNIT $KOPI_DOCKA_BACKUP_ID $1\" > {}",
                out.display()
            ),
            0o755,
        );
        run(
            HookPoint::PreStop,
            &[ok, "a b;c".into()],
            &CTX,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "pre-stop app b1 a b;c\n",
            "argv is not split by a shell"
        );
        let bad = script(dir.path(), "bad", "echo broken >&2; exit 3", 0o755);
        let err = run(HookPoint::PreBackup, &[bad], &CTX, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("failed") && err.contains("broken"), "{err}");
    }

    #[tokio::test]
    async fn writable_relative_and_slow_hooks_are_refused_or_killed() {
        let dir = tempfile::tempdir().unwrap();
        let open = script(dir.path(), "open", "true", 0o777);
        let err = run(HookPoint::PreBackup, &[open], &CTX, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod go-w"), "{err}");
        let slow = script(dir.path(), "slow", "sleep 30", 0o755);
        let started = std::time::Instant::now();
        let err = run(
            HookPoint::PostStop,
            &[slow],
            &CTX,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
