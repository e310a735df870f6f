//! User commands at fixed points of a unit's backup.
//!
//! Rules: a hook is an argv array run without a shell (container and unit names are never
//! interpolated into a command line); its program must be an absolute path that neither group
//! nor others may write (a writable hook run as root is a privilege escalation); it gets the
//! unit, the backup id and the point in its environment; it is killed after the timeout; its
//! stdout and stderr are read at the same time and only their ends ([`OUTPUT_CAP`]) go to the
//! log, line by line.
//!
//! A unit's hook may instead run inside one of the unit's containers
//! (`{ container = "app", user = "www-data", argv = [...] }`), through the engine's exec API
//! (Docker and Podman alike): the container is found by its compose service or its name, must
//! be running at that point (pre-backup, pre-stop, post-start and verify; post-stop and
//! pre-start only for a container the backup keeps running), and gets the same environment,
//! output cap and timeout as a host hook.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::config::{ContainerHook, Hook, HookPoint};

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

/// Where hooks inside a container run: the engine and the unit whose containers they name.
#[derive(Clone, Copy)]
pub struct InUnit<'a> {
    /// The engine that runs the unit.
    pub engine: &'a crate::docker::Engine,
    /// The unit (its containers, by service and name).
    pub unit: &'a crate::unit::Unit,
}

/// Runs the hook of `point` of every set that has one, in order (global first, then the
/// unit's); stops at the first failure. `in_unit`: where a hook inside a container runs
/// (`None` where none may: restores).
pub async fn run_point<'a>(
    sets: impl IntoIterator<Item = &'a crate::config::HookSet>,
    point: HookPoint,
    context: &HookContext<'_>,
    timeout: Duration,
    in_unit: Option<InUnit<'_>>,
) -> Result<(), HookError> {
    for set in sets {
        match set.get(point) {
            None => {}
            Some(Hook::Host(argv)) => run(point, argv, context, timeout).await?,
            Some(Hook::Container(hook)) => match in_unit {
                Some(in_unit) => run_in_container(point, hook, context, timeout, in_unit).await?,
                None => {
                    return Err(HookError::Refused {
                        point,
                        program: hook.argv.first().cloned().unwrap_or_default(),
                        reason: "a hook inside a container cannot run here (restores take host \
                                 hooks)"
                            .into(),
                    });
                }
            },
        }
    }
    Ok(())
}

/// Runs one hook inside a container of the unit ([`InUnit`]).
pub async fn run_in_container(
    point: HookPoint,
    hook: &ContainerHook,
    context: &HookContext<'_>,
    timeout: Duration,
    InUnit { engine, unit }: InUnit<'_>,
) -> Result<(), HookError> {
    let program = format!(
        "{} in container {}",
        hook.argv.first().map_or("", String::as_str),
        hook.container
    );
    let refused = |reason: String| HookError::Refused {
        point,
        program: program.clone(),
        reason,
    };
    let container = find_container(unit, &hook.container).map_err(&refused)?;
    let name = container.name.as_str();
    match engine.state(name).await {
        Ok(Some(state)) if state.running => {}
        Ok(found) => {
            return Err(refused(format!(
                "container {name} {}: a hook inside a container needs it running (pre-backup, \
                 pre-stop, post-start and verify run while the unit runs; post-stop and \
                 pre-start only while the backup keeps it running)",
                if found.is_some() {
                    "is not running"
                } else {
                    "does not exist"
                }
            )));
        }
        Err(error) => return Err(refused(error.to_string())),
    }
    let env = vec![
        format!("KOPI_DOCKA_HOOK={}", point.as_str()),
        format!("KOPI_DOCKA_UNIT={}", context.unit),
        format!("KOPI_DOCKA_UNIT_KIND={}", context.kind),
        format!("KOPI_DOCKA_BACKUP_ID={}", context.backup_id),
        format!("KOPI_DOCKA_STATUS={}", context.status.unwrap_or("")),
    ];
    let mut exec = engine
        .exec_as(name, (hook.argv.clone(), env), false, hook.user.as_deref())
        .await
        .map_err(|e| refused(format!("cannot start it: {e}")))?;
    let exec_id = exec.id.clone();
    let drained = tokio::time::timeout(timeout, async {
        let (mut out, mut err) = (Capped::default(), Capped::default());
        while let Some(frame) = futures_util::StreamExt::next(&mut exec.output).await {
            match frame {
                Ok(bollard::container::LogOutput::StdErr { message }) => err.push(&message),
                Ok(other) => out.push(&other.into_bytes()),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok((out.finish(), err.finish()))
    })
    .await;
    let (out, err) = match drained {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(refused(format!("its output broke off: {error}"))),
        Err(_) => {
            let killed = kill_exec(engine, &exec_id).await;
            return Err(HookError::Failed {
                point,
                program,
                outcome: format!("did not finish within {}s and {killed}", timeout.as_secs()),
                output: String::new(),
            });
        }
    };
    for line in out.lines().chain(err.lines()) {
        tracing::info!(
            hook = point.as_str(),
            unit = context.unit,
            container = name,
            "{line}"
        );
    }
    match exec_exit_code(engine, &exec_id).await {
        Ok(0) => Ok(()),
        Ok(code) => Err(HookError::Failed {
            point,
            program,
            outcome: format!("failed (exit code {code})"),
            output: format!("{err}{out}"),
        }),
        Err(error) => Err(refused(error)),
    }
}

/// The container a hook names: by compose service, else by name. By name, not id: a systemd
/// unit's `--rm --replace` container is a new one after a start.
fn find_container<'u>(
    unit: &'u crate::unit::Unit,
    wanted: &str,
) -> Result<&'u crate::unit::Container, String> {
    unit.containers
        .iter()
        .find(|c| c.service.as_deref() == Some(wanted))
        .or_else(|| unit.containers.iter().find(|c| c.name == wanted))
        .ok_or_else(|| {
            let known: Vec<String> = unit
                .containers
                .iter()
                .map(|c| match &c.service {
                    Some(service) => format!("{service} ({})", c.name),
                    None => c.name.clone(),
                })
                .collect();
            format!(
                "unit {} has no service or container `{wanted}` (it has: {})",
                unit.name,
                known.join(", ")
            )
        })
}

/// The exit code of a finished exec (the engine may report it a moment after the stream ends).
async fn exec_exit_code(engine: &crate::docker::Engine, exec_id: &str) -> Result<i64, String> {
    for _ in 0..100 {
        match engine.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Ok(code),
            // Polling is the only way: the API has no event for an exec's end.
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => return Err(error.to_string()),
        }
    }
    Err("the engine did not report its exit code".into())
}

/// Kills a timed-out exec by its host pid (the engine's API cannot stop an exec). Says what
/// happened, for the error message.
async fn kill_exec(engine: &crate::docker::Engine, exec_id: &str) -> String {
    let pid = match engine.exec_pid(exec_id).await {
        Ok(Some(pid)) => pid,
        Ok(None) => return "has ended since".into(),
        Err(error) => return format!("could not be killed ({error}); it may still run"),
    };
    let killed = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::KILL));
    match killed {
        Some(Ok(())) => "was killed".into(),
        // A remote or rootless engine's pid is not ours to signal.
        Some(Err(error)) => {
            format!("could not be killed (pid {pid}: {error}); it may still run in the container")
        }
        None => format!("could not be killed (pid {pid}); it may still run in the container"),
    }
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
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Both pipes are drained at the same time: a hook that fills one (64 KiB) while we wait
    // for the other to end would block until its timeout. Only the last OUTPUT_CAP bytes of
    // each are kept, so a chatty hook cannot fill memory or the log.
    let finished = tokio::time::timeout(timeout, async {
        let (out, err) = tokio::join!(drain_capped(stdout), drain_capped(stderr));
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

/// The most of a hook's stdout and of its stderr that is kept (the end of each).
pub const OUTPUT_CAP: usize = 64 * 1024;

/// Reads `pipe` to its end, keeping only its last [`OUTPUT_CAP`] bytes (with a note of how
/// much was dropped before them).
pub(crate) async fn drain_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Capped::default();
    let mut chunk = vec![0_u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => kept.push(&chunk[..n]),
            // Output is for the log; an unreadable pipe is not a reason to fail the hook.
            Err(error) => {
                tracing::debug!(%error, "cannot read a hook's output");
                break;
            }
        }
    }
    kept.finish()
}

/// The last [`OUTPUT_CAP`] bytes of a stream, and how many were dropped before them.
#[derive(Default)]
struct Capped {
    kept: Vec<u8>,
    dropped: usize,
}

impl Capped {
    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        // Trimmed in batches (at twice the cap), not on every chunk.
        if self.kept.len() > 2 * OUTPUT_CAP {
            let excess = self.kept.len() - OUTPUT_CAP;
            self.kept.drain(..excess);
            self.dropped += excess;
        }
    }

    fn finish(mut self) -> String {
        if self.kept.len() > OUTPUT_CAP {
            let excess = self.kept.len() - OUTPUT_CAP;
            self.kept.drain(..excess);
            self.dropped += excess;
        }
        let text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped == 0 {
            text
        } else {
            format!("[{} bytes of output not kept]\n{text}", self.dropped)
        }
    }
}

/// The program must exist, be a file, and be writable only by its owner, who must be root or
/// us.
pub(crate) fn check_program(program: &Path) -> Result<(), String> {
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

    /// A hook that writes 10 MB to each of stdout and stderr finishes (nothing blocks on a
    /// full pipe) and only the ends of its output are kept.
    #[tokio::test]
    async fn a_chatty_hook_neither_blocks_nor_fills_memory() {
        let dir = tempfile::tempdir().unwrap();
        let chatty = script(
            dir.path(),
            "chatty",
            "head -c 10000000 /dev/zero | tr '\\0' e >&2; head -c 10000000 /dev/zero | tr '\\0' o; echo LAST-ERR >&2; exit 4",
            0o755,
        );
        let err = run(HookPoint::PreStop, &[chatty], &CTX, Duration::from_secs(20))
            .await
            .unwrap_err();
        let HookError::Failed {
            outcome, output, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert!(
            outcome.contains("failed"),
            "the hook was not waited for: {outcome}"
        );
        assert!(output.contains("LAST-ERR"), "the end of stderr is kept");
        assert!(
            output.len() <= 2 * OUTPUT_CAP + 200,
            "{} bytes kept",
            output.len()
        );
    }
}
