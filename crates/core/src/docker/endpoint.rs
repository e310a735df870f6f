//! Where the engine is: a named endpoint (`[docker] host`, `$DOCKER_HOST`) or the usual
//! sockets of Docker and Podman, rootful and rootless, probed in order; TLS as the docker CLI
//! reads it (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`).

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, DockerConfig, DockerHost, EngineChoice, Environment, defaults};

/// Rootful Podman's API socket (`podman.socket`, `podman system service`).
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Where to look for the engine and how to speak to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineTarget {
    /// Endpoints to try, in order; the first that answers is used.
    pub candidates: Vec<DockerHost>,
    /// The endpoint was named (config or `$DOCKER_HOST`): its failure is the error, nothing
    /// else is tried. Otherwise the candidates are the usual places, probed.
    pub named: bool,
    /// TLS for a `tcp://` endpoint; `None` speaks plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The client's TLS material, named as the docker CLI names it in its cert directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The directory (`DOCKER_CERT_PATH`, `[docker] cert-path`, else `~/.docker`).
    pub dir: PathBuf,
}

impl TlsFiles {
    /// The CA the engine's certificate must chain to.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The client certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The client certificate's key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

impl EngineTarget {
    /// `[docker] host`, else `$DOCKER_HOST`, else the sockets `[docker] engine` and
    /// `[docker] user` name, for this process.
    pub fn resolve(config: &DockerConfig, env: &Environment) -> Result<Self, ConfigError> {
        let tls = tls(config, env);
        if let Some(host) = &config.host {
            return Ok(Self {
                candidates: vec![host.clone()],
                named: true,
                tls,
            });
        }
        if let Some(value) = &env.docker_host_env {
            let host = DockerHost::try_from(value.clone())
                .map_err(|message| ConfigError::DockerHostEnv { message })?;
            return Ok(Self {
                candidates: vec![host],
                named: true,
                tls,
            });
        }
        let runtime = match &config.user {
            Some(user) => {
                let uid =
                    uid_of(user).ok_or_else(|| ConfigError::DockerUser { user: user.clone() })?;
                Runtime::User(uid)
            }
            None if env.uid == 0 => Runtime::Root,
            None => Runtime::User(env.uid),
        };
        Ok(Self {
            candidates: probe_order(config.engine, runtime, env.xdg_runtime_dir.as_deref()),
            named: false,
            tls,
        })
    }
}

/// Whose engine is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The system's (rootful) engine.
    Root,
    /// The rootless engine of this uid.
    User(u32),
}

/// The sockets probed for `choice`, in order: Docker's before Podman's (a host with both is
/// a Docker host that also has Podman installed, usually for something else).
pub fn probe_order(
    choice: EngineChoice,
    runtime: Runtime,
    own_runtime_dir: Option<&Path>,
) -> Vec<DockerHost> {
    let mut docker = Vec::new();
    let mut podman = Vec::new();
    match runtime {
        Runtime::Root => {
            docker.push(PathBuf::from(defaults::DOCKER_SOCKET));
            podman.push(PathBuf::from(PODMAN_SOCKET));
        }
        Runtime::User(uid) => {
            // A user who may use the system's Docker socket (the `docker` group) uses it, as
            // the docker CLI does; rootless Docker's socket is in the user's runtime dir.
            docker.push(PathBuf::from(defaults::DOCKER_SOCKET));
            let user_run = PathBuf::from(format!("/run/user/{uid}"));
            let mut dirs: Vec<PathBuf> =
                own_runtime_dir.map(Path::to_path_buf).into_iter().collect();
            dirs.push(user_run);
            for dir in &dirs {
                docker.push(dir.join("docker.sock"));
                podman.push(dir.join("podman/podman.sock"));
            }
            // Podman's own fallback when there is no runtime dir (no logind session).
            podman.push(PathBuf::from(format!(
                "/tmp/podman-run-{uid}/podman/podman.sock"
            )));
        }
    }
    let mut out: Vec<PathBuf> = match choice {
        EngineChoice::Auto => docker.into_iter().chain(podman).collect(),
        EngineChoice::Docker => docker,
        EngineChoice::Podman => podman,
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out.into_iter().map(DockerHost::Unix).collect()
}

fn tls(config: &DockerConfig, env: &Environment) -> Option<TlsFiles> {
    if !config.tls_verify.unwrap_or(env.docker_tls_verify_env) {
        return None;
    }
    let dir = config
        .cert_path
        .as_ref()
        .map(|p| p.as_path().to_path_buf())
        .or_else(|| env.docker_cert_path_env.clone())
        .or_else(|| env.home.as_ref().map(|h| h.join(".docker")))
        .unwrap_or_else(|| PathBuf::from("/root/.docker"));
    Some(TlsFiles { dir })
}

/// The uid of a user named in `/etc/passwd` (or given as a number).
fn uid_of(user: &str) -> Option<u32> {
    user.parse()
        .ok()
        .or_else(|| crate::account::Account::lookup(user).ok().map(|a| a.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str) -> DockerHost {
        DockerHost::Unix(p.into())
    }

    #[test]
    fn root_probes_docker_then_rootful_podman() {
        assert_eq!(
            probe_order(EngineChoice::Auto, Runtime::Root, None),
            [
                unix("/var/run/docker.sock"),
                unix("/run/podman/podman.sock")
            ]
        );
        assert_eq!(
            probe_order(EngineChoice::Podman, Runtime::Root, None),
            [unix("/run/podman/podman.sock")]
        );
        assert_eq!(
            probe_order(EngineChoice::Docker, Runtime::Root, None),
            [unix("/var/run/docker.sock")]
        );
    }

    #[test]
    fn a_user_probes_the_system_docker_then_their_rootless_sockets() {
        assert_eq!(
            probe_order(
                EngineChoice::Auto,
                Runtime::User(1001),
                Some(Path::new("/run/user/1001"))
            ),
            [
                unix("/var/run/docker.sock"),
                unix("/run/user/1001/docker.sock"),
                unix("/run/user/1001/podman/podman.sock"),
                unix("/tmp/podman-run-1001/podman/podman.sock"),
            ]
        );
        assert_eq!(
            probe_order(
                EngineChoice::Podman,
                Runtime::User(1001),
                Some(Path::new("/xdg"))
            ),
            [
                unix("/xdg/podman/podman.sock"),
                unix("/run/user/1001/podman/podman.sock"),
                unix("/tmp/podman-run-1001/podman/podman.sock"),
            ]
        );
    }

    #[test]
    fn named_endpoints_win_and_tls_follows_the_docker_cli_variables() {
        let mut env = Environment::bare(true);
        env.docker_host_env = Some("tcp://127.0.0.1:2376".into());
        env.docker_tls_verify_env = true;
        env.docker_cert_path_env = Some("/certs".into());
        let target = EngineTarget::resolve(&DockerConfig::default(), &env).unwrap();
        assert!(target.named);
        assert_eq!(
            target.candidates,
            [DockerHost::Tcp("127.0.0.1:2376".into())]
        );
        assert_eq!(target.tls.unwrap().ca(), Path::new("/certs/ca.pem"));

        let config = DockerConfig {
            host: Some(unix("/cfg.sock")),
            tls_verify: Some(false),
            ..DockerConfig::default()
        };
        let target = EngineTarget::resolve(&config, &env).unwrap();
        assert_eq!(target.candidates, [unix("/cfg.sock")]);
        assert_eq!(target.tls, None);

        env.docker_host_env = None;
        let target = EngineTarget::resolve(&DockerConfig::default(), &env).unwrap();
        assert!(!target.named);
        assert_eq!(target.candidates.len(), 2);
    }

    #[test]
    fn an_unknown_rootless_user_is_a_config_error() {
        let config = DockerConfig {
            user: Some("kdtest-no-such-user".into()),
            ..DockerConfig::default()
        };
        let err = EngineTarget::resolve(&config, &Environment::bare(true)).unwrap_err();
        assert!(err.to_string().contains("kdtest-no-such-user"), "{err}");
        let config = DockerConfig {
            user: Some("root".into()),
            engine: EngineChoice::Podman,
            ..DockerConfig::default()
        };
        let target = EngineTarget::resolve(&config, &Environment::bare(true)).unwrap();
        assert_eq!(target.candidates[0], unix("/run/user/0/podman/podman.sock"));
    }
}
