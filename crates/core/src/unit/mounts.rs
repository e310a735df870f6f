//! Which bind mounts and volumes are backed up, and how a path recorded inside a manager
//! container (Portainer) is found on the host.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use crate::config::{AbsolutePath, DiscoveryConfig, LoadedConfig, RepositoryLocation, UnitConfig};

use super::{CoverageReason, Verdict};

/// The rules that decide a bind mount's verdict.
#[derive(Debug, Clone)]
pub struct MountRules {
    host_internal: Vec<AbsolutePath>,
    exclude: Vec<AbsolutePath>,
    repository: Option<PathBuf>,
    /// `[units]`: per-unit, per-volume, per-bind and per-service settings.
    units: BTreeMap<String, UnitConfig>,
}

impl MountRules {
    /// Rules from the `[discovery]` config and the repository location (a local repository is
    /// never backed up into itself).
    pub fn new(discovery: &DiscoveryConfig, repository: &RepositoryLocation) -> Self {
        Self {
            host_internal: discovery.host_internal_paths.clone(),
            exclude: discovery.exclude_paths.clone(),
            repository: match repository {
                RepositoryLocation::Local(path) => Some(path.clone()),
                RepositoryLocation::Remote { .. } => None,
            },
            units: BTreeMap::new(),
        }
    }

    /// Rules from a loaded configuration: `[discovery]`, the repository, and the `[units]`
    /// tables (exclude globs, per-service settings).
    pub fn from_config(loaded: &LoadedConfig) -> Self {
        Self {
            units: loaded.config.units.clone(),
            ..Self::new(&loaded.config.discovery, &loaded.repository_location())
        }
    }

    /// `[units.<unit>]`, when configured.
    pub fn unit(&self, unit: &str) -> Option<&UnitConfig> {
        self.units.get(unit)
    }

    /// The verdict for a bind mount source on this host.
    pub fn classify_bind(&self, source: &Path) -> Verdict {
        let source = crate::config::normalize(source);
        if source == Path::new("/") {
            return Verdict::skipped(CoverageReason::RootFilesystem);
        }
        if let Some(under) = self.host_internal.iter().find(|p| p.contains(&source)) {
            return Verdict::skipped(CoverageReason::HostInternal {
                under: under.as_path().into(),
            });
        }
        if let Some(under) = self.exclude.iter().find(|p| p.contains(&source)) {
            return Verdict::skipped(CoverageReason::Excluded {
                under: under.as_path().into(),
            });
        }
        if let Some(repository) = &self.repository
            && (repository.starts_with(&source) || source.starts_with(repository))
        {
            return Verdict::skipped(CoverageReason::Repository {
                repository: repository.clone(),
            });
        }
        match std::fs::metadata(&source) {
            Ok(meta) if meta.file_type().is_socket() => Verdict::skipped(CoverageReason::Socket),
            Ok(_) => Verdict::BACKED_UP,
            Err(_) => Verdict::not_protected(CoverageReason::Missing),
        }
    }
}

/// What a local volume's driver options (`docker volume create -o type=.. -o o=.. -o device=..`,
/// compose `driver_opts`) make of it. The local driver mounts such a volume on its mountpoint
/// only while a container uses it; stopped, the mountpoint is an empty directory, so the data
/// must be read where it really is, or reported as out of reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBacking {
    /// No mount options: the data is in the mountpoint.
    Plain,
    /// `o=bind,device=PATH`: the data is in the host directory `PATH`.
    Bind(PathBuf),
    /// `type=tmpfs`: memory only.
    Tmpfs,
    /// Any other filesystem (`nfs`, `cifs`, a block device): mounted only while in use.
    Mounted {
        /// The `type` option (`nfs`, `cifs`, `ext4`...).
        fs_type: String,
        /// The `device` option.
        device: String,
    },
}

impl LocalBacking {
    /// Reads the local driver's options. A bind device that is not a plain absolute path
    /// (relative, `..`, NUL) is refused: it comes from whoever created the volume.
    pub fn from_options<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let (mut fs_type, mut o, mut device) = ("", "", "");
        for (key, value) in options {
            match key {
                "type" => fs_type = value,
                "o" => o = value,
                "device" => device = value,
                _ => {}
            }
        }
        if fs_type == "tmpfs" {
            return Ok(Self::Tmpfs);
        }
        let bind = o.split(',').any(|t| t == "bind" || t == "rbind");
        if device.is_empty() {
            return Ok(if fs_type.is_empty() || fs_type == "none" {
                Self::Plain
            } else {
                Self::Mounted {
                    fs_type: fs_type.to_owned(),
                    device: String::new(),
                }
            });
        }
        if bind {
            return crate::unit::names::host_path(device)
                .map(Self::Bind)
                .map_err(|why| format!("bind device `{}`: {why}", device.escape_debug()));
        }
        Ok(Self::Mounted {
            fs_type: if fs_type.is_empty() {
                "a device".to_owned()
            } else {
                fs_type.to_owned()
            },
            device: device.to_owned(),
        })
    }
}

/// A mount of some container on this host: `destination` inside it maps to `source` here.
#[derive(Debug, Clone)]
pub(super) struct HostMount {
    pub destination: PathBuf,
    pub source: PathBuf,
    pub container: String,
}

/// Finds a recorded path on this host. Compose records paths as the compose process saw them;
/// when compose ran inside a manager container (Portainer), those paths exist only inside it.
/// We translate them through the longest matching mount of any container and accept the result
/// only when it exists.
#[derive(Debug, Clone, Default)]
pub(super) struct PathResolver {
    mounts: Vec<HostMount>,
}

impl PathResolver {
    pub fn new(mut mounts: Vec<HostMount>) -> Self {
        // Longest destination first, so the most specific mount wins.
        mounts.sort_by(|a, b| {
            b.destination
                .as_os_str()
                .len()
                .cmp(&a.destination.as_os_str().len())
        });
        Self { mounts }
    }

    /// The host path and, when translated, the container whose mount did it. `None` when the
    /// path is found neither as is nor through a mount.
    pub fn resolve(&self, recorded: &Path) -> Option<(PathBuf, Option<String>)> {
        if recorded.exists() {
            return Some((recorded.to_path_buf(), None));
        }
        self.mounts.iter().find_map(|m| {
            let rest = recorded.strip_prefix(&m.destination).ok()?;
            let candidate = m.source.join(rest);
            candidate
                .exists()
                .then(|| (candidate, Some(m.container.clone())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::CoverageStatus;

    fn rules(repo: &Path) -> MountRules {
        let discovery = DiscoveryConfig {
            exclude_paths: vec![AbsolutePath::try_from("/srv/media".to_owned()).unwrap()],
            ..DiscoveryConfig::default()
        };
        MountRules::new(&discovery, &RepositoryLocation::Local(repo.to_path_buf()))
    }

    #[test]
    fn bind_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let rules = rules(&dir.path().join("repo"));
        let reason = |p: &Path| rules.classify_bind(p).reason;

        assert_eq!(reason(Path::new("/")), Some(CoverageReason::RootFilesystem));
        assert_eq!(
            reason(Path::new("/proc/../")),
            Some(CoverageReason::RootFilesystem)
        );
        assert_eq!(
            reason(Path::new("/var/run/docker.sock")),
            Some(CoverageReason::HostInternal {
                under: "/var/run".into()
            })
        );
        assert_eq!(
            reason(Path::new("/etc/localtime")),
            Some(CoverageReason::HostInternal {
                under: "/etc".into()
            })
        );
        assert_eq!(
            reason(Path::new("/srv/media/films")),
            Some(CoverageReason::Excluded {
                under: "/srv/media".into()
            })
        );
        assert!(matches!(
            reason(dir.path()),
            Some(CoverageReason::Repository { .. })
        ));
        assert_eq!(rules.classify_bind(&data), Verdict::BACKED_UP);
        let missing = rules.classify_bind(&dir.path().join("gone"));
        assert_eq!(missing.status, CoverageStatus::NotProtected);
    }

    /// `from_config` keeps the `[units]` tables and the repository of the loaded config; a
    /// remote repository is never a reason to skip a local path, and a local repository is
    /// skipped from inside as well as from a directory above it.
    #[test]
    fn rules_from_a_loaded_config() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("data")).unwrap();
        let text = format!(
            "[repository]\nlocation = \"{}\"\n[units.app]\nexclude = [\"*.tmp\"]\n",
            repo.display()
        );
        let mut loaded = LoadedConfig::defaults_in(crate::config::Environment::bare(true));
        loaded.config = crate::config::parse(&text, Path::new("/etc/kd.toml")).unwrap();
        let rules = MountRules::from_config(&loaded);
        assert_eq!(rules.unit("app").unwrap().exclude, ["*.tmp"]);
        assert!(rules.unit("other").is_none());
        for inside in [repo.clone(), repo.join("data")] {
            assert!(
                matches!(
                    rules.classify_bind(&inside).reason,
                    Some(CoverageReason::Repository { .. })
                ),
                "{inside:?}"
            );
        }

        let remote = RepositoryLocation::Remote {
            backend: crate::config::RemoteBackend::Sftp,
            target: format!("u@h:{}", repo.display()),
        };
        let rules = MountRules::new(&DiscoveryConfig::default(), &remote);
        assert_eq!(rules.classify_bind(&repo), Verdict::BACKED_UP);
    }

    #[test]
    fn local_volume_options() {
        let backing = |opts: &[(&'static str, &'static str)]| {
            LocalBacking::from_options(opts.iter().copied())
        };
        assert_eq!(backing(&[]), Ok(LocalBacking::Plain));
        assert_eq!(
            backing(&[("type", "none"), ("o", "bind"), ("device", "/srv/data/")]),
            Ok(LocalBacking::Bind("/srv/data".into()))
        );
        assert_eq!(
            backing(&[
                ("type", "nfs"),
                ("o", "addr=10.0.0.1,rw"),
                ("device", ":/export")
            ]),
            Ok(LocalBacking::Mounted {
                fs_type: "nfs".into(),
                device: ":/export".into()
            })
        );
        assert_eq!(
            backing(&[("type", "tmpfs"), ("device", "tmpfs")]),
            Ok(LocalBacking::Tmpfs)
        );
        // A type without a device, or a device without a type: mounted only while in use.
        assert_eq!(backing(&[("type", "none")]), Ok(LocalBacking::Plain));
        assert_eq!(
            backing(&[("type", "nfs"), ("o", "addr=10.0.0.1")]),
            Ok(LocalBacking::Mounted {
                fs_type: "nfs".into(),
                device: String::new()
            })
        );
        assert_eq!(
            backing(&[("o", "ro"), ("device", "/dev/sdb1")]),
            Ok(LocalBacking::Mounted {
                fs_type: "a device".into(),
                device: "/dev/sdb1".into()
            })
        );
        assert_eq!(
            backing(&[("o", "ro,rbind"), ("device", "/srv/data")]),
            Ok(LocalBacking::Bind("/srv/data".into()))
        );
        for bad in ["srv/data", "/srv/../etc", "/srv/\0x"] {
            let bad = bad.replace("\\0", "\0");
            let opts = [("o", "bind"), ("device", bad.as_str())];
            assert!(
                LocalBacking::from_options(opts.iter().copied()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sockets_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("app.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let rules = rules(Path::new("/nonexistent-repo"));
        assert_eq!(
            rules.classify_bind(&sock).reason,
            Some(CoverageReason::Socket)
        );
    }

    #[test]
    fn resolver_translates_through_longest_mount() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("portainer-data");
        std::fs::create_dir_all(host.join("compose/7")).unwrap();
        std::fs::write(host.join("compose/7/docker-compose.yml"), "services: {}").unwrap();
        let resolver = PathResolver::new(vec![
            HostMount {
                destination: "/".into(),
                source: "/nonexistent".into(),
                container: "a".into(),
            },
            HostMount {
                destination: "/data".into(),
                source: host.clone(),
                container: "portainer".into(),
            },
        ]);
        let (path, via) = resolver
            .resolve(Path::new("/data/compose/7/docker-compose.yml"))
            .unwrap();
        assert_eq!(path, host.join("compose/7/docker-compose.yml"));
        assert_eq!(via.as_deref(), Some("portainer"));
        assert!(
            resolver
                .resolve(Path::new("/data/compose/8/docker-compose.yml"))
                .is_none()
        );
    }
}
