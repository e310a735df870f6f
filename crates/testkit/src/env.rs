//! The real `kopi-docka` binary as one isolated installation in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::docker::{DockerResources, unique_prefix};
use crate::process::LoggedChild;

/// The real `kopi-docka` binary with an environment that does not leak the developer's config,
/// engine settings or DR passphrase into the test.
pub fn kopi_docka() -> assert_cmd::Command {
    let mut cmd = Command::new(binary());
    isolate(&mut cmd);
    assert_cmd::Command::from_std(cmd)
}

/// [`kopi_docka`] as one isolated installation: `config`, and the state and cache dirs under
/// `work`.
pub fn kopi_docka_at(config: &Path, work: &Path) -> assert_cmd::Command {
    let mut cmd = Command::new(binary());
    isolate(&mut cmd);
    installation(&mut cmd, config, work);
    assert_cmd::Command::from_std(cmd)
}

/// [`kopi_docka_at`] as a plain `std::process::Command`, for tests that run the binary in a
/// pseudo-terminal.
pub fn kopi_docka_std_at(config: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(binary());
    isolate(&mut cmd);
    installation(&mut cmd, config, work);
    cmd
}

/// The binary cargo built for this test run (beside the test executable's `deps/` dir).
fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("kopi-docka")
}

fn isolate(cmd: &mut Command) {
    cmd.env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("KOPI_DOCKA_LOG")
        .env_remove("KOPI_DOCKA_DR_PASSPHRASE")
        .env("XDG_CONFIG_HOME", "/nonexistent/kopi-docka-test-config");
}

fn installation(cmd: &mut Command, config: &Path, work: &Path) {
    cmd.arg("--config")
        .arg(config)
        .env("KOPI_DOCKA_STATE_DIR", work.join("state"))
        .env("KOPI_DOCKA_CACHE_DIR", work.join("cache"));
}

/// One installation: a config naming a repository and password file in a temp dir, state and
/// cache dirs beside them, and a unique prefix for the Docker objects the test creates.
///
/// Fields drop in order: the Docker resources go before the temp dir holding their compose
/// files.
pub struct Env {
    /// Everything named with [`Env::prefix`], removed on drop.
    pub resources: DockerResources,
    /// The `kdtest-<random>` prefix of every Docker object this test creates.
    pub prefix: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    password_file: String,
    header: String,
    location: Option<String>,
}

/// How to build an [`Env`]; [`EnvBuilder::build`] writes the config.
#[must_use]
pub struct EnvBuilder {
    prefix: Option<String>,
    config: String,
    password_file: String,
    header: String,
    extra: String,
    init: bool,
    location: Option<String>,
}

impl Env {
    /// An installation with `config.toml`, password file `password`, no extra config, and no
    /// repository yet.
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            prefix: None,
            config: "config.toml".into(),
            password_file: "password".into(),
            header: String::new(),
            extra: String::new(),
            init: false,
            location: None,
        }
    }

    /// `name` inside the installation's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The installation's temp dir (state and cache live in `state/` and `cache/` below it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.config.clone()
    }

    /// The repository (`repo` in the temp dir).
    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// The repository's password file.
    pub fn password_file(&self) -> PathBuf {
        self.path(&self.password_file)
    }

    /// `kopi-docka <args>` on this installation.
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = kopi_docka_at(&self.config, self.dir.path());
        cmd.args(args);
        cmd
    }

    /// `<wrapper...> kopi-docka <args>` on this installation: the binary run by another
    /// program (`unshare`, `setpriv`, `strace`), with the same isolated environment.
    pub fn cmd_via(&self, wrapper: &[&str], args: &[&str]) -> assert_cmd::Command {
        let (program, rest) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(program);
        cmd.args(rest).arg(binary());
        isolate(&mut cmd);
        installation(&mut cmd, &self.config, self.dir.path());
        cmd.args(args);
        assert_cmd::Command::from_std(cmd)
    }

    /// `kopi-docka <args>` with another config file of this installation.
    pub fn cmd_with(&self, config: &str, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = kopi_docka_at(&self.path(config), self.dir.path());
        cmd.args(args);
        cmd
    }

    /// `kopi-docka <args>`, which must succeed, and its stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(args).assert().success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }

    /// `kopi-docka <args>` in the background, stderr piped (for the log lines a test waits
    /// for), stdout discarded.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = Command::new(binary());
        isolate(&mut cmd);
        installation(&mut cmd, &self.config, self.dir.path());
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `kopi-docka <args>` in the background with its stderr read as it comes (wait for the
    /// log line that proves a phase began with [`LoggedChild::wait_for_line`]).
    pub fn spawn_logged(&self, args: &[&str]) -> LoggedChild {
        self.spawn_logged_with(args, &[])
    }

    /// [`Env::spawn_logged`] with extra environment variables (a failpoint).
    pub fn spawn_logged_with(&self, args: &[&str], vars: &[(&str, &str)]) -> LoggedChild {
        let mut cmd = Command::new(binary());
        isolate(&mut cmd);
        installation(&mut cmd, &self.config, self.dir.path());
        cmd.envs(vars.iter().copied());
        LoggedChild::spawn(cmd.args(args))
    }

    /// Writes a config file `name` for this installation's repository, with `extra` after the
    /// `[repository]` table.
    pub fn write_config(&self, name: &str, extra: &str) {
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(
            path,
            format!(
                "{}[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n{extra}",
                self.header,
                self.location
                    .clone()
                    .unwrap_or_else(|| self.repo().display().to_string()),
                self.password_file
            ),
        )
        .unwrap();
    }

    /// Restores a snapshot with restic (not with kopi-docka) and returns its content dir.
    pub fn restic_restore(&self, snapshot: &Value) -> PathBuf {
        let id = snapshot["id"].as_str().unwrap();
        let target = self.path(&format!("restic-{id}"));
        let args = [
            std::ffi::OsStr::new("restore"),
            id.as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
        ];
        crate::process::restic(&self.repo(), &self.password_file(), args);
        target.join(snapshot["path"].as_str().unwrap().trim_start_matches('/'))
    }

    /// The fixture stack in `stack/`, up as project `<prefix>-stack`, with `override_yml` as
    /// docker-compose.override.yml; returns (project, dir).
    pub fn stack(&mut self, override_yml: &str) -> (String, PathBuf) {
        let dir = self.path("stack");
        std::fs::create_dir(&dir).unwrap();
        crate::files::copy_fixture("stack", &dir);
        if !override_yml.is_empty() {
            std::fs::write(dir.join("docker-compose.override.yml"), override_yml).unwrap();
        }
        let name = format!("{}-stack", self.prefix);
        self.resources.compose_up(&name, &dir);
        (name, dir)
    }
}

impl EnvBuilder {
    /// Uses `prefix` for Docker objects (when the config must name them before the env exists).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }

    /// The config at `name` (relative to the temp dir) instead of `config.toml`.
    pub fn config_at(mut self, name: &str) -> Self {
        name.clone_into(&mut self.config);
        self
    }

    /// The password file at `name` (relative to the config) instead of `password`.
    pub fn password_file(mut self, name: &str) -> Self {
        name.clone_into(&mut self.password_file);
        self
    }

    /// Text before the `[repository]` table (a user's comment, say).
    pub fn header(mut self, text: &str) -> Self {
        text.clone_into(&mut self.header);
        self
    }

    /// TOML after the `[repository]` table.
    pub fn extra(mut self, toml: &str) -> Self {
        toml.clone_into(&mut self.extra);
        self
    }

    /// A remote repository location instead of the local `repo` dir.
    pub fn location(mut self, location: &str) -> Self {
        self.location = Some(location.to_owned());
        self
    }

    /// Creates the repository with `kopi-docka admin repo init` (which must succeed).
    pub fn init(mut self) -> Self {
        self.init = true;
        self
    }

    /// Writes the config (and creates the repository when asked).
    pub fn build(self) -> Env {
        let prefix = self.prefix.unwrap_or_else(unique_prefix);
        let dir = tempfile::tempdir().unwrap();
        let env = Env {
            resources: DockerResources::new(&prefix),
            prefix,
            config: dir.path().join(&self.config),
            dir,
            password_file: self.password_file,
            header: self.header,
            location: self.location,
        };
        env.write_config(&self.config, &self.extra);
        if self.init {
            env.cmd(&["admin", "repo", "init"]).assert().success();
        }
        env
    }
}
