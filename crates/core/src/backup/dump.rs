//! Database dumps: the server's own client, run inside the running database container through
//! the engine's exec API, streamed into the repository as one part of the unit's restore point.
//!
//! Rules:
//! - The client is the one inside the container, so its version always matches the server.
//! - Credentials never leave the container: the command is a fixed shell script that reads
//!   the container's own variables (`POSTGRES_PASSWORD`, `MARIADB_ROOT_PASSWORD`, their
//!   `*_FILE` secrets, ...) and exports what the client reads (`PGPASSWORD`, `MYSQL_PWD`,
//!   `REDISCLI_AUTH`). Nothing secret is on our argv, in the exec's argv, or in a log line.
//! - Nothing is written to disk on the way: exec output -> bounded channel -> rustic_core.
//! - A dump counts only when the exec exited 0 and its stream ended cleanly (and, for SQL
//!   dumps, ends with the client's own "complete" trailer). This is decided BEFORE the reader
//!   sees the end of the stream: a failed dump sets the snapshot's cancel flag first, so
//!   rustic_core saves nothing ([`crate::repo::WriteRepo::snapshot_stream`]).
//!
//! Loading a dump back ([`load`]) is the same in reverse: the file streamed from the
//! repository into the client's stdin inside the new container.

use std::io::Read;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::docker::Engine;
use crate::repo::{Cancel, Repo, RepoError, SnapshotInfo, SnapshotMeta, WriteRepo};
use crate::unit::{DumpEngine, DumpSpec};

/// Chunks of dump output buffered between the engine and the repository (each up to the
/// engine's frame size, 32 KiB for docker): a few MiB at most in memory.
const CHANNEL_CHUNKS: usize = 64;
/// Bytes of the client's stderr kept for the error message.
const STDERR_KEEP: usize = 2048;

/// Finds the client's binaries where the official images and Debian put them.
const PATH_SETUP: &str =
    r#"for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && PATH="$d:$PATH"; done; export PATH"#;

const POSTGRES_CREDENTIALS: &str = r#"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; else PGPASSWORD="${POSTGRES_PASSWORD:-}"; fi
if [ -n "${POSTGRES_USER_FILE:-}" ]; then PGUSER="$(cat "$POSTGRES_USER_FILE")"; else PGUSER="${POSTGRES_USER:-postgres}"; fi
export PGPASSWORD PGUSER
"#;

const MYSQL_CREDENTIALS: &str = r#"
f="${MARIADB_ROOT_PASSWORD_FILE:-${MYSQL_ROOT_PASSWORD_FILE:-}}"
if [ -n "$f" ]; then MYSQL_PWD="$(cat "$f")"; else MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"; fi
export MYSQL_PWD
"#;

const REDIS_CREDENTIALS: &str = r#"
[ -z "${REDIS_PASSWORD_FILE:-}" ] || REDIS_PASSWORD="$(cat "$REDIS_PASSWORD_FILE")"
[ -z "${REDIS_PASSWORD:-}" ] || export REDISCLI_AUTH="$REDIS_PASSWORD"
"#;

/// The exec's argv and extra environment (variable names and non-secret values only).
fn dump_command(spec: &DumpSpec) -> (Vec<String>, Vec<String>, Option<&'static str>) {
    let mut env = Vec::new();
    let (script, trailer) = match spec.engine {
        DumpEngine::Postgres => match &spec.database {
            Some(db) => {
                env.push(format!("KOPI_DOCKA_DATABASE={db}"));
                (
                    format!(
                        "{PATH_SETUP}\n{POSTGRES_CREDENTIALS}\nexec pg_dump -h 127.0.0.1 -Fc --dbname=\"$KOPI_DOCKA_DATABASE\""
                    ),
                    None,
                )
            }
            None => (
                format!("{PATH_SETUP}\n{POSTGRES_CREDENTIALS}\nexec pg_dumpall -h 127.0.0.1"),
                Some("PostgreSQL database cluster dump complete"),
            ),
        },
        DumpEngine::Mariadb | DumpEngine::Mysql => {
            let first = if spec.engine == DumpEngine::Mariadb {
                "mariadb-dump mysqldump"
            } else {
                "mysqldump mariadb-dump"
            };
            (
                format!(
                    "{MYSQL_CREDENTIALS}\nfor d in {first}; do command -v \"$d\" >/dev/null 2>&1 && break; done\n\
                     exec \"$d\" -uroot -h 127.0.0.1 --protocol=tcp --all-databases --single-transaction --routines --events --triggers"
                ),
                Some("-- Dump completed"),
            )
        }
        DumpEngine::Redis => (
            format!("{REDIS_CREDENTIALS}\nexec redis-cli --no-auth-warning --rdb -"),
            None,
        ),
        DumpEngine::Sqlite => {
            let path = spec
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            env.push(format!("KOPI_DOCKA_PATH={path}"));
            (
                // A writer holding its lock makes the reader wait, not fail ("database is locked").
                "exec sqlite3 -bail -readonly -cmd '.timeout 30000' \"$KOPI_DOCKA_PATH\" .dump"
                    .into(),
                Some("COMMIT;"),
            )
        }
        // Refused at the label (`unit::policy`): no MongoDB server could be tested here.
        DumpEngine::Mongodb => (
            "echo 'mongodb dumps are not supported yet' >&2; exit 1".into(),
            None,
        ),
    };
    (
        vec!["sh".into(), "-c".into(), format!("set -e\n{script}")],
        env,
        trailer,
    )
}

/// How a dump that a restore does not load is put in place by hand; `None` for the engines
/// whose dump a restore loads. Only `MongoDB` (whose dumps are refused at backup: no `MongoDB`
/// server could be tested, see `unit::policy`); a point that holds one predates that.
#[must_use]
pub fn restored_by_hand(engine: DumpEngine) -> Option<&'static str> {
    match engine {
        DumpEngine::Mongodb => Some("`mongorestore --archive --drop < mongodump.archive`"),
        _ => None,
    }
}

/// Loads an RDB into the running server without touching its files: a second, private
/// `redis-server` inside the container (loopback, random port, no persistence) loads the
/// file, after `redis-check-rdb` has read it through (a truncated or damaged RDB fails
/// here); the real server becomes its replica until it has the whole keyspace, then
/// `REPLICAOF NO ONE`. The server writes the data the way it is configured to (its RDB, its
/// append-only file rewritten), so `appendonly yes` needs nothing special. The key counts of
/// both servers must match.
const REDIS_LOAD: &str = r#"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kopi-docka-load.XXXXXX")
port=""
loader() { (unset REDISCLI_AUTH; redis-cli --no-auth-warning -p "$port" "$@"); }
server() { redis-cli --no-auth-warning "$@"; }
keys() { grep -o 'keys=[0-9]*' | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'; }
cleanup() {
  if [ -n "$port" ]; then loader shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cat > "$tmp/dump.rdb"
if command -v redis-check-rdb >/dev/null 2>&1 && ! redis-check-rdb "$tmp/dump.rdb" > "$tmp/check.log" 2>&1; then
  grep -v '^\[offset' "$tmp/check.log" | tail -n 3 >&2
  echo "the RDB file is damaged or cut short (redis-check-rdb); nothing was loaded" >&2
  exit 1
fi
tries=0
while :; do
  tries=$((tries + 1))
  [ "$tries" -le 5 ] || { tail -n 5 "$tmp/server.log" >&2; echo "the loading redis-server did not start; nothing was loaded" >&2; exit 1; }
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' \n') % 40000))
  redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --dbfilename dump.rdb \
    --appendonly no --save "" --daemonize yes --logfile "$tmp/server.log" \
    --pidfile "$tmp/server.pid" || continue
  n=0
  while :; do
    if loader ping 2>/dev/null | grep -q PONG; then break 2; fi
    n=$((n + 1))
    if [ "$n" -gt 20 ] && ! kill -0 "$(cat "$tmp/server.pid" 2>/dev/null || echo 0)" 2>/dev/null; then break; fi
    sleep 0.1
  done
done
server replicaof 127.0.0.1 "$port" >/dev/null
n=0
until server info replication | grep -q '^master_link_status:up' && server info persistence | grep -q '^loading:0'; do
  n=$((n + 1))
  [ "$n" -lt 18000 ] || { echo "the server did not take the dump within an hour" >&2; server replicaof no one >/dev/null; exit 1; }
  sleep 0.2
done
server replicaof no one >/dev/null
want=$(loader info keyspace | keys)
got=$(server info keyspace | keys)
[ "$got" = "$want" ] || { echo "the server holds $got keys after loading, the dump $want" >&2; exit 1; }
if server config get appendonly | grep -qx yes; then
  server bgrewriteaof >/dev/null 2>&1 || true
  until server info persistence | grep -q '^aof_rewrite_in_progress:0' && server info persistence | grep -q '^aof_rewrite_scheduled:0'; do sleep 0.2; done
  server info persistence | grep -q '^aof_last_bgrewrite_status:ok' || { echo "the server could not rewrite its append-only file" >&2; exit 1; }
fi
if [ -n "$(server config get save | sed -n 2p)" ]; then
  server save | grep -q OK || { echo "the server could not save its RDB" >&2; exit 1; }
fi
"#;

/// Loads an SQL dump into the `SQLite` file named by the label: the dump is checked for its
/// `COMMIT;` trailer first (a cut `.dump` loads as an empty database: its transaction is
/// never committed), loaded into a new file beside it (`-bail`: the first error stops it;
/// then `PRAGMA integrity_check`), the file as it was kept
/// as a consistent copy (`VACUUM INTO`), then the new content put in with `SQLite`'s own backup
/// API (`.restore`): one write transaction, atomic, and safe with open connections and WAL
/// (renaming a file under a running app would leave its `-wal` to be replayed into the new one).
const SQLITE_LOAD: &str = r#"
db="$KOPI_DOCKA_PATH"
dir=$(dirname "$db")
mkdir -p "$dir"
cd "$dir"
new=$(mktemp .kopi-docka-load.XXXXXX)
sql=$(mktemp .kopi-docka-load-sql.XXXXXX)
trap 'rm -f "$dir/$new" "$dir/$sql"' EXIT
cat > "$sql"
tail -c 64 "$sql" | grep -q 'COMMIT;' || { echo "the dump ends without its COMMIT; trailer: it is cut short; the database was not touched" >&2; exit 1; }
sqlite3 -bail "$new" < "$sql"
check=$(sqlite3 "$new" 'PRAGMA integrity_check')
[ "$check" = ok ] || { echo "the loaded dump fails integrity_check: $check" >&2; exit 1; }
if [ -s "$db" ]; then
  keep="$db.kopi-docka-before-restore-$KOPI_DOCKA_STAMP"
  esc=$(printf '%s' "$keep" | sed "s/'/''/g")
  sqlite3 -bail -cmd '.timeout 30000' "$db" "VACUUM INTO '$esc'"
  echo "kopi-docka: the database file as it was before the restore is kept as $keep"
fi
sqlite3 -bail -cmd '.timeout 30000' "$db" ".restore $new"
"#;

/// The load's argv and extra environment; `None` for engines that are restored as files
/// ([`restored_by_hand`]).
fn load_command(spec: &DumpSpec) -> Option<(Vec<String>, Vec<String>)> {
    let mut env = Vec::new();
    let script = match spec.engine {
        // Errors are shown, not fatal: the fresh server already has the superuser role the
        // dump creates ("already exists"). Other errors fail the restore (see `load`).
        DumpEngine::Postgres => match &spec.database {
            Some(db) => {
                env.push(format!("KOPI_DOCKA_DATABASE={db}"));
                format!(
                    "{PATH_SETUP}\n{POSTGRES_CREDENTIALS}\n\
                     psql -h 127.0.0.1 -X -q -d postgres -c \"CREATE DATABASE \\\"$KOPI_DOCKA_DATABASE\\\"\" >/dev/null 2>&1 || true\n\
                     exec pg_restore -h 127.0.0.1 --clean --if-exists --no-owner -d \"$KOPI_DOCKA_DATABASE\""
                )
            }
            None => format!(
                "{PATH_SETUP}\n{POSTGRES_CREDENTIALS}\nexec psql -h 127.0.0.1 -X -q -d postgres"
            ),
        },
        DumpEngine::Mariadb | DumpEngine::Mysql => {
            let first = if spec.engine == DumpEngine::Mariadb {
                "mariadb mysql"
            } else {
                "mysql mariadb"
            };
            format!(
                "{MYSQL_CREDENTIALS}\nfor c in {first}; do command -v \"$c\" >/dev/null 2>&1 && break; done\n\
                 exec \"$c\" -uroot -h 127.0.0.1 --protocol=tcp"
            )
        }
        DumpEngine::Redis => format!("{REDIS_CREDENTIALS}\n{REDIS_LOAD}"),
        DumpEngine::Sqlite => {
            let path = spec
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            env.push(format!("KOPI_DOCKA_PATH={path}"));
            env.push(format!(
                "KOPI_DOCKA_STAMP={}",
                crate::durable::stamp(jiff::Timestamp::now())
            ));
            SQLITE_LOAD.to_owned()
        }
        DumpEngine::Mongodb => return None,
    };
    Some((
        vec!["sh".into(), "-c".into(), format!("set -e\n{script}")],
        env,
    ))
}

/// The command that succeeds once the server accepts connections with the container's
/// credentials (over TCP: the official images' init-time server listens on the socket only).
fn ready_command(spec: &DumpSpec) -> Vec<String> {
    let script = match spec.engine {
        DumpEngine::Postgres => format!(
            "{PATH_SETUP}\n{POSTGRES_CREDENTIALS}\npsql -h 127.0.0.1 -X -q -d postgres -c 'select 1' >/dev/null"
        ),
        DumpEngine::Mariadb | DumpEngine::Mysql => format!(
            "{MYSQL_CREDENTIALS}\nfor c in mariadb mysql; do command -v \"$c\" >/dev/null 2>&1 && break; done\n\
             \"$c\" -uroot -h 127.0.0.1 --protocol=tcp -e 'select 1' >/dev/null"
        ),
        DumpEngine::Redis => {
            format!("{REDIS_CREDENTIALS}\nredis-cli --no-auth-warning ping | grep -q PONG")
        }
        DumpEngine::Sqlite | DumpEngine::Mongodb => "true".into(),
    };
    vec!["sh".into(), "-c".into(), format!("set -e\n{script}")]
}

/// Why a dump or a load failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The engine refused the exec or the stream broke.
    #[error("{engine} dump of {container}: {reason}")]
    Engine {
        /// Database engine.
        engine: DumpEngine,
        /// Container.
        container: String,
        /// What happened.
        reason: String,
    },
    /// The client exited non-zero or its output was cut short.
    #[error(
        "{engine} dump of {container} failed: {reason}{stderr}; the dump was not saved, the \
         restore point is incomplete"
    )]
    Failed {
        /// Database engine.
        engine: DumpEngine,
        /// Container.
        container: String,
        /// Exit code or truncation.
        reason: String,
        /// The client's last words (credentials are never on it: they are in variables).
        stderr: String,
    },
    /// The repository could not store it.
    #[error("{engine} dump of {container}: {source}")]
    Repo {
        /// Database engine.
        engine: DumpEngine,
        /// Container.
        container: String,
        /// The repository's error.
        source: RepoError,
    },
}

/// Reads what the pump task sends; blocks (on rustic_core's threads, never an async worker).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(error)) => return Err(error),
                // The pump closed the channel: only after the dump was checked (see `pump`).
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// When a dump must give up: the end of the unit's downtime budget (the services that write
/// to the database are stopped while it runs) and the run's interrupt.
pub struct DumpLimits {
    /// `max-downtime-seconds` after the first stop; `None`: unbounded.
    pub deadline: Option<tokio::time::Instant>,
    /// Set on SIGINT/SIGTERM.
    pub interrupt: super::Interrupt,
}

/// Dumps the database of `container` (running) into the repository as the snapshot `meta`
/// (a [`crate::repo::Part::Dump`]). Returns the saved snapshot only if the dump succeeded.
/// A dump still running at the `limits` is abandoned like a failed one (nothing saved); its
/// client, whose output is closed, ends on its own.
pub async fn dump(
    engine: &Engine,
    repo: &WriteRepo,
    (container_id, container): (&str, &str),
    spec: &DumpSpec,
    meta: SnapshotMeta,
    limits: DumpLimits,
) -> Result<SnapshotInfo, DumpError> {
    let (cmd, env, trailer) = dump_command(spec);
    let fail_engine = |reason: String| DumpError::Engine {
        engine: spec.engine,
        container: container.to_owned(),
        reason,
    };
    let exec = engine
        .exec(container_id, cmd, env, false)
        .await
        .map_err(|e| fail_engine(e.to_string()))?;
    tracing::info!(container, engine = %spec.engine, "dump started");
    let cancel = Cancel::new();
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let snapshot = tokio::spawn({
        let (repo, cancel) = (repo.clone(), cancel.clone());
        let file = spec.engine.file_name(spec);
        async move { repo.snapshot_stream(meta, file, reader, cancel).await }
    });
    let checked = pump(engine, exec, (tx, &cancel), trailer, limits).await;
    let saved = snapshot.await;
    match (checked, saved) {
        (Ok(bytes), Ok(Ok(info))) => {
            tracing::info!(container, engine = %spec.engine, bytes, snapshot = %info.id, "dump saved");
            Ok(info)
        }
        (Err((reason, stderr)), saved) => {
            // Belt and braces: a snapshot that was saved anyway must not stay.
            if let Ok(Ok(info)) = saved
                && let Err(error) = repo.forget_ids(vec![info.id.clone()]).await
            {
                tracing::warn!(%error, snapshot = %info.id, "cannot remove the failed dump's snapshot");
            }
            Err(DumpError::Failed {
                engine: spec.engine,
                container: container.to_owned(),
                reason,
                stderr,
            })
        }
        (Ok(_), Ok(Err(source))) => Err(DumpError::Repo {
            engine: spec.engine,
            container: container.to_owned(),
            source,
        }),
        (Ok(_), Err(panic)) => Err(fail_engine(format!("internal error: {panic}"))),
    }
}

/// Moves the exec's stdout into the channel, then decides: the stream ended cleanly, the exec
/// exited 0, and the trailer is there. Only then is the channel closed (the end of the file);
/// otherwise the snapshot is cancelled first, then the reader gets an error. Returns the bytes
/// moved, or the reason and the client's stderr.
async fn pump(
    engine: &Engine,
    mut exec: crate::docker::ExecStream,
    (tx, cancel): (mpsc::Sender<std::io::Result<Vec<u8>>>, &Cancel),
    trailer: Option<&str>,
    mut limits: DumpLimits,
) -> Result<u64, (String, String)> {
    let mut stderr: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut bytes = 0_u64;
    let mut broken = None;
    let started = tokio::time::Instant::now();
    let over_budget = async move {
        match limits.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(over_budget);
    loop {
        let item = tokio::select! {
            item = exec.output.next() => item,
            () = &mut over_budget => {
                broken = Some(format!(
                    "still running after {}s, at the end of max-downtime-seconds (the services \
                     that write to it are stopped while it runs); abandoned after {bytes} bytes",
                    started.elapsed().as_secs()
                ));
                break;
            }
            _ = limits.interrupt.wait_for(|stop| *stop) => {
                broken = Some("interrupted".to_owned());
                break;
            }
        };
        let Some(item) = item else { break };
        match item {
            Ok(bollard::container::LogOutput::StdOut { message }) => {
                bytes += message.len() as u64;
                tail.extend_from_slice(&message);
                if tail.len() > 1024 {
                    tail.drain(..tail.len() - 1024);
                }
                if tx.send(Ok(message.into())).await.is_err() {
                    // The snapshot side gave up (a repository error); it reports why.
                    broken = Some("the repository stopped reading".to_owned());
                    break;
                }
            }
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                stderr.extend_from_slice(&message);
                if stderr.len() > STDERR_KEEP {
                    stderr.drain(..stderr.len() - STDERR_KEEP);
                }
            }
            Ok(_) => {}
            Err(error) => {
                broken = Some(format!("the output stream broke: {error}"));
                break;
            }
        }
    }
    drop(exec.output);
    let verdict = match broken {
        Some(reason) => Err(reason),
        None => match exit_code(engine, &exec.id).await {
            Ok(0) => match trailer {
                Some(t) if !String::from_utf8_lossy(&tail).contains(t) => Err(format!(
                    "the output ends without the client's {t:?} trailer (cut short)"
                )),
                _ => Ok(bytes),
            },
            Ok(code) => Err(format!("the client exited with code {code}")),
            Err(error) => Err(error),
        },
    };
    match verdict {
        Ok(bytes) => Ok(bytes),
        Err(reason) => {
            cancel.cancel();
            // Sending may fail when the reader is gone; the flag alone then keeps it out.
            if tx
                .send(Err(std::io::Error::other(reason.clone())))
                .await
                .is_err()
            {
                tracing::debug!("dump reader already gone");
            }
            let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
            let stderr = if stderr.is_empty() {
                String::new()
            } else {
                format!(" (its stderr: {stderr})")
            };
            Err((reason, stderr))
        }
    }
}

/// The exec's exit code once the engine reports it finished (it may lag the stream's end by
/// a moment).
async fn exit_code(engine: &Engine, exec_id: &str) -> Result<i64, String> {
    for _ in 0..100 {
        match engine.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => return Err(error.to_string()),
        }
    }
    Err("the engine did not report the client's exit code".into())
}

/// Waits until the database in `container_id` accepts connections with the container's own
/// credentials, up to `within`.
pub async fn wait_ready(
    engine: &Engine,
    container_id: &str,
    container: &str,
    spec: &DumpSpec,
    within: Duration,
) -> Result<(), DumpError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match run_to_end(engine, container_id, ready_command(spec), Vec::new()).await {
            Ok((0, _)) => return Ok(()),
            Ok((code, stderr)) => format!("exit code {code}: {stderr}"),
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(DumpError::Engine {
                engine: spec.engine,
                container: container.to_owned(),
                reason: format!(
                    "the server did not accept connections within {}s ({last})",
                    within.as_secs()
                ),
            });
        }
        // Polling the server is the only way to know: it has no event for "ready".
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a short command in the container; its exit code and stderr.
async fn run_to_end(
    engine: &Engine,
    container_id: &str,
    cmd: Vec<String>,
    env: Vec<String>,
) -> Result<(i64, String), String> {
    let mut exec = engine
        .exec(container_id, cmd, env, false)
        .await
        .map_err(|e| e.to_string())?;
    let mut stderr = Vec::new();
    while let Some(item) = exec.output.next().await {
        match item {
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                stderr.extend_from_slice(&message);
            }
            Ok(_) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    let code = exit_code(engine, &exec.id).await?;
    stderr.truncate(STDERR_KEEP);
    Ok((code, String::from_utf8_lossy(&stderr).trim().to_owned()))
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Bytes of the dump fed to the client.
    pub bytes: u64,
    /// What the load says a person should know (`SQLite`'s rollback copy, Redis's key count).
    pub notes: Vec<String>,
    /// Messages expected on a fresh server (the superuser role "already exists").
    pub expected: Vec<String>,
}

/// Loads the dump in snapshot `snapshot` into the running, freshly created database
/// container: streamed from the repository into the client's stdin. A dump that ends without
/// its client's trailer (cut short in the repository) fails the load like a client error.
pub async fn load(
    engine: &Engine,
    repo: &Repo,
    container_id: &str,
    container: &str,
    spec: &DumpSpec,
    snapshot: &str,
) -> Result<Loaded, DumpError> {
    let fail = |reason: String| DumpError::Engine {
        engine: spec.engine,
        container: container.to_owned(),
        reason,
    };
    let Some((cmd, env)) = load_command(spec) else {
        return Err(fail(format!(
            "a restore does not load this engine's dump: take it with --target-dir and load \
             it by hand ({})",
            restored_by_hand(spec.engine).unwrap_or("see docs/databases.md")
        )));
    };
    let trailer = dump_command(spec).2;
    let mut exec = engine
        .exec(container_id, cmd, env, true)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHANNEL_CHUNKS);
    let reading = tokio::spawn({
        let (repo, id) = (repo.clone(), snapshot.to_owned());
        async move { repo.read_file(id, ChannelWriter(tx)).await }
    });
    let mut input = exec.input;
    let cut_at = load_truncate_failpoint();
    let feeding = async move {
        let (mut bytes, mut tail) = (0_u64, Vec::new());
        while let Some(mut chunk) = rx.recv().await {
            if let Some(cut) = cut_at {
                let room = usize::try_from(cut.saturating_sub(bytes)).unwrap_or(usize::MAX);
                chunk.truncate(room);
            }
            bytes += chunk.len() as u64;
            tail.extend_from_slice(&chunk);
            if tail.len() > 1024 {
                tail.drain(..tail.len() - 1024);
            }
            input.write_all(&chunk).await?;
        }
        input.shutdown().await.map(|()| (bytes, tail))
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let draining = async {
        while let Some(item) = exec.output.next().await {
            match item {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    stderr.extend_from_slice(&message);
                }
                Ok(bollard::container::LogOutput::StdOut { message }) if stdout.len() < 65_536 => {
                    stdout.extend_from_slice(&message);
                }
                _ => {}
            }
        }
    };
    let (fed, ()) = tokio::join!(feeding, draining);
    let read = reading.await;
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(fail(format!("reading the dump: {error}"))),
        Err(panic) => return Err(fail(format!("internal error: {panic}"))),
    }
    let (bytes, tail) = fed.map_err(|e| fail(format!("feeding the client: {e}")))?;
    let code = exit_code(engine, &exec.id).await.map_err(&fail)?;
    let expected = load_verdict(
        code,
        &String::from_utf8_lossy(&stderr),
        trailer,
        (bytes, &tail),
    )
    .map_err(fail)?;
    Ok(Loaded {
        bytes,
        notes: String::from_utf8_lossy(&stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("kopi-docka: "))
            .map(str::to_owned)
            .collect(),
        expected,
    })
}

/// Whether a load succeeded: the client's exit code and error lines, and the dump's trailer.
/// Returns the messages expected on a fresh server, or why it failed.
fn load_verdict(
    code: i64,
    stderr: &str,
    trailer: Option<&str>,
    (bytes, tail): (u64, &[u8]),
) -> Result<Vec<String>, String> {
    let (expected, errors): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .partition(|l| l.contains("already exists"));
    // A dump cut short is the cause of whatever the client said about its end.
    if let Some(t) = trailer
        && !String::from_utf8_lossy(tail).contains(t)
    {
        let said = errors
            .first()
            .map_or(String::new(), |e| format!(" (the client: {e})"));
        return Err(format!(
            "the dump ends without the client's {t:?} trailer after {bytes} bytes: it is cut \
             short, and what came before it was loaded; do not use this database{said}"
        ));
    }
    if code != 0 || !errors.is_empty() {
        let detail: Vec<&str> = errors.into_iter().take(5).collect();
        return Err(format!(
            "loading the dump failed (exit code {code}): {}",
            if detail.is_empty() {
                stderr.trim().chars().take(STDERR_KEEP).collect::<String>()
            } else {
                detail.join("; ")
            }
        ));
    }
    Ok(expected.into_iter().map(str::to_owned).collect())
}

/// Test-only fault injection, debug builds only: `KOPI_DOCKA_FAILPOINT=dump-load-truncate:N`
/// feeds only the first N bytes of every dump a restore or a drill loads, as a dump cut short
/// in the repository would be (a backup never stores one: its trailer is checked).
#[cfg(debug_assertions)]
fn load_truncate_failpoint() -> Option<u64> {
    std::env::var("KOPI_DOCKA_FAILPOINT")
        .ok()?
        .strip_prefix("dump-load-truncate:")?
        .parse()
        .ok()
}

#[cfg(not(debug_assertions))]
fn load_truncate_failpoint() -> Option<u64> {
    None
}

/// Hands what rustic_core writes to the async side, chunk by chunk.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::other("the database client stopped reading"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_without_its_trailer_fails_whatever_the_client_said() {
        let trailer = Some("dump complete");
        let cut = load_verdict(0, "", trailer, (10, b"insert")).unwrap_err();
        assert!(cut.contains("cut short"), "{cut}");
        let cut = load_verdict(3, "ERROR:  syntax error", trailer, (10, b"ins")).unwrap_err();
        assert!(
            cut.contains("cut short") && cut.contains("syntax error"),
            "{cut}"
        );
        let whole = b"-- dump complete\n";
        let expected = load_verdict(
            0,
            "ERROR:  role \"postgres\" already exists",
            trailer,
            (16, whole),
        )
        .unwrap();
        assert_eq!(expected.len(), 1);
        let failed = load_verdict(0, "ERROR:  permission denied", trailer, (16, whole));
        assert!(failed.unwrap_err().contains("permission denied"));
        assert!(load_verdict(1, "", None, (0, b"")).is_err());
    }

    #[test]
    fn no_secret_value_is_ever_in_the_command() {
        // The scripts name variables; values come from the container's own environment.
        for engine in DumpEngine::ALL {
            let spec = DumpSpec {
                engine,
                database: None,
                path: (engine == DumpEngine::Sqlite).then(|| "/data/app.db".into()),
            };
            let (cmd, env, _) = dump_command(&spec);
            assert_eq!(cmd[..2], ["sh", "-c"]);
            assert!(env.iter().all(|e| e.starts_with("KOPI_DOCKA_")), "{env:?}");
        }
    }
}
