use std::path::Path;

use super::*;

fn env(root: bool) -> Environment {
    Environment {
        home: Some("/home/ann".into()),
        xdg_data_home: Some("/data/ann".into()),
        ..Environment::bare(root)
    }
}

#[test]
fn default_paths_depend_on_root() {
    assert_eq!(
        env(true).default_config_path(),
        Path::new("/etc/kopi-docka/config.toml")
    );
    assert_eq!(
        env(true).default_repository(),
        Path::new("/var/lib/kopi-docka/repository")
    );
    assert_eq!(
        env(false).default_config_path(),
        Path::new("/home/ann/.config/kopi-docka/config.toml")
    );
    assert_eq!(
        env(false).default_repository(),
        Path::new("/data/ann/kopi-docka/repository")
    );
}

#[test]
fn retention_defaults_and_validation() {
    let cfg = parse("", Path::new("/c.toml")).unwrap();
    assert_eq!(cfg.retention.keep_last, 10);
    assert_eq!(cfg.retention.keep_yearly, 3);
    let within = parse("[retention]\nkeep-within = \"14d\"\n", Path::new("/c.toml")).unwrap();
    assert!(within.retention.keep_within.is_some());
    let nothing = "[retention]\nkeep-last = 0\nkeep-daily = 0\nkeep-weekly = 0\n\
                   keep-monthly = 0\nkeep-yearly = 0\nkeep-within = \"1d\"\n";
    let refused = parse(nothing, Path::new("/c.toml"));
    assert!(
        matches!(refused, Err(ConfigError::Invalid { .. })),
        "{refused:?}"
    );
    let bad = parse(
        "[retention]\nkeep-within = \"soon\"\n",
        Path::new("/c.toml"),
    );
    assert!(
        matches!(bad, Err(ConfigError::Parse { line: 2, .. })),
        "{bad:?}"
    );
}

#[test]
fn zero_and_absurd_values_are_refused_with_key_and_range() {
    let cases = [
        (
            "[backup]\nmax-downtime-seconds = 0\n",
            "[backup] max-downtime-seconds = 0 is outside 1..=604800",
        ),
        (
            "[backup]\nmax-downtime-seconds = 604801\n",
            "[backup] max-downtime-seconds = 604801 is outside 1..=604800",
        ),
        (
            "[backup]\nhook-timeout-seconds = 0\n",
            "[backup] hook-timeout-seconds = 0 is outside 1..=86400",
        ),
        (
            "[backup]\nstop-timeout-seconds = 0\n",
            "[backup] stop-timeout-seconds = 0 is outside 1..=86400",
        ),
        (
            "[backup]\nstop-timeout-seconds = 86401\n",
            "[backup] stop-timeout-seconds = 86401 is outside 1..=86400",
        ),
        (
            "[backup]\nhealth-timeout-seconds = 0\n",
            "[backup] health-timeout-seconds = 0 is outside 1..=86400",
        ),
        (
            "[notifications]\ntimeout-seconds = 0\n",
            "[notifications] timeout-seconds = 0 is outside 1..=300",
        ),
        (
            "[monitoring]\nmax-age-hours = 0\n",
            "[monitoring] max-age-hours = 0 is outside 1..=8784",
        ),
        (
            "[units.\"web\"]\nmax-age-hours = 0\n",
            "[units.\"web\"] max-age-hours = 0 is outside 1..=8784",
        ),
    ];
    for (text, expected) in cases {
        match parse(text, Path::new("/c.toml")) {
            Err(ConfigError::Invalid { message, .. }) => {
                assert!(message.starts_with(expected), "{text}: {message}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let bounds = "[backup]\nstop-timeout-seconds = 86400\nhook-timeout-seconds = 1\n\
                  max-downtime-seconds = 1\nhealth-timeout-seconds = 1\n\
                  [notifications]\ntimeout-seconds = 300\n[monitoring]\nmax-age-hours = 8784\n";
    assert!(
        parse(bounds, Path::new("/c.toml")).is_ok(),
        "the bounds themselves are allowed"
    );
}

#[test]
fn hooks_need_an_absolute_program() {
    let ok = "[hooks]\npre-stop = [\"/usr/local/bin/dump\", \"--fast\"]\n\
              [units.web.hooks]\npost-start = [\"/bin/true\"]\n";
    let cfg = parse(ok, Path::new("/c.toml")).unwrap();
    assert_eq!(
        cfg.units["web"].hooks.post_start,
        Some(Hook::Host(vec!["/bin/true".to_owned()]))
    );
    let relative = "[units.web.hooks]\npre-backup = [\"dump.sh\"]\n";
    let err = parse(relative, Path::new("/c.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[units.\"web\".hooks] pre-backup") && err.contains("absolute"),
        "{err}"
    );
    let empty = parse("[hooks]\npost-backup = []\n", Path::new("/c.toml"));
    assert!(matches!(empty, Err(ConfigError::Invalid { .. })));
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = "[repository]\nlocation = \"/srv/repo\"\npasword-file = \"/x\"\n";
    let err = parse(text, Path::new("/c.toml")).unwrap_err();
    let ConfigError::Parse { line, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*line, 3);
    assert!(message.contains("pasword-file"), "{message}");
    assert!(err.to_string().starts_with("/c.toml:3:"), "{err}");
}

#[test]
fn locations_parse() {
    let local = RepositoryLocation::try_from("/srv//repo/".to_owned()).unwrap();
    assert_eq!(local, RepositoryLocation::Local("/srv/repo".into()));
    let sftp = RepositoryLocation::try_from("sftp:u@h:/r".to_owned()).unwrap();
    assert_eq!(
        sftp,
        RepositoryLocation::Remote {
            backend: RemoteBackend::Sftp,
            target: "u@h:/r".into()
        }
    );
    assert_eq!(sftp.to_string(), "sftp:u@h:/r");
    assert!(RepositoryLocation::try_from("relative/repo".to_owned()).is_err());
    assert!(RepositoryLocation::try_from("ftp:x".to_owned()).is_err());
}

#[test]
fn invalid_location_reports_line() {
    let text = "\n[repository]\nlocation = \"repo\"\n";
    let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
    assert!(err.starts_with("/c.toml:3:"), "{err}");
    assert!(err.contains("absolute"), "{err}");
}

#[test]
fn password_sources_are_exclusive_and_relative_files_resolve() {
    let both = "[repository]\npassword-file = \"p\"\npassword-command = \"pass show x\"\n";
    assert!(matches!(
        parse(both, Path::new("/etc/kd/c.toml")),
        Err(ConfigError::Invalid { .. })
    ));
    let rel = "[repository]\npassword-file = \"../secrets/pw\"\n";
    let cfg = parse(rel, Path::new("/etc/kd/c.toml")).unwrap();
    assert_eq!(
        cfg.repository.password_file.as_deref(),
        Some(Path::new("/etc/secrets/pw"))
    );
}

#[test]
fn docker_host_forms() {
    let parse = |s: &str| DockerHost::try_from(s.to_owned());
    assert_eq!(
        parse("unix:///run/d.sock"),
        Ok(DockerHost::Unix("/run/d.sock".into()))
    );
    assert_eq!(
        parse("/run/d.sock"),
        Ok(DockerHost::Unix("/run/d.sock".into()))
    );
    assert_eq!(
        parse("tcp://127.0.0.1:2375"),
        Ok(DockerHost::Tcp("127.0.0.1:2375".into()))
    );
    assert_eq!(
        parse("ssh://me@host:2222"),
        Ok(DockerHost::Ssh("me@host:2222".into()))
    );
    assert!(parse("ssh://").is_err());
    assert!(parse("ssh://me@").is_err());
    assert!(parse("unix://relative").is_err());
}

#[test]
fn docker_host_precedence() {
    let mut e = env(true);
    e.docker_host_env = Some("unix:///env.sock".into());
    let mut loaded = LoadedConfig {
        config: Config::default(),
        path: None,
        source: ConfigSource::Default,
        env: e,
    };
    assert_eq!(
        loaded.engine_target().unwrap().candidates,
        [DockerHost::Unix("/env.sock".into())]
    );
    loaded.config.docker.host = Some(DockerHost::Unix("/cfg.sock".into()));
    assert_eq!(
        loaded.engine_target().unwrap().candidates,
        [DockerHost::Unix("/cfg.sock".into())]
    );
}

#[test]
fn absolute_path_containment_is_by_component() {
    let etc = AbsolutePath::try_from("/etc/".to_owned()).unwrap();
    assert!(etc.contains(Path::new("/etc")));
    assert!(etc.contains(Path::new("/etc/nginx/conf.d")));
    assert!(!etc.contains(Path::new("/etcetera")));
}

#[test]
fn missing_default_file_means_defaults_but_missing_named_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env(false);
    e.xdg_config_home = Some(dir.path().to_path_buf());
    let loaded = load(None, e.clone()).unwrap();
    assert!(loaded.path.is_none());
    assert!(
        !dir.path().join("kopi-docka").exists(),
        "loading must not create files"
    );
    let missing = dir.path().join("nope.toml");
    assert!(matches!(
        load(Some(&missing), e),
        Err(ConfigError::NotFound {
            source_rule: ConfigSource::Flag,
            ..
        })
    ));
}

#[test]
fn values_print_as_they_parse() {
    for (point, name) in [
        (HookPoint::PreBackup, "pre-backup"),
        (HookPoint::PreStop, "pre-stop"),
        (HookPoint::PostStop, "post-stop"),
        (HookPoint::PreStart, "pre-start"),
        (HookPoint::PostStart, "post-start"),
        (HookPoint::Verify, "verify"),
        (HookPoint::PostBackup, "post-backup"),
        (HookPoint::PreRestore, "pre-restore"),
        (HookPoint::PostRestore, "post-restore"),
    ] {
        assert_eq!(point.as_str(), name);
        assert_eq!(point.to_string(), name);
    }
    for scope in [Scope::Minimal, Scope::Standard, Scope::Full] {
        assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        assert_eq!(scope.to_string(), scope.as_str());
    }
    assert_eq!(Scope::Minimal.as_str(), "minimal");
    assert_eq!(Scope::Standard.as_str(), "standard");
    assert_eq!(Scope::Full.as_str(), "full");
    assert_eq!(Scope::parse("everything"), None);

    let path = AbsolutePath::try_from("/srv/./data/../app//".to_owned()).unwrap();
    assert_eq!(path.as_path(), Path::new("/srv/app"));
    assert_eq!(path.to_string(), "/srv/app");
    assert_eq!(String::from(path), "/srv/app");
    assert_eq!(
        super::values::normalize(Path::new("/../a/b/..")),
        Path::new("/a")
    );
    assert!(AbsolutePath::try_from("srv/app".to_owned()).is_err());

    let local = RepositoryLocation::try_from("local:/srv/repo/".to_owned()).unwrap();
    assert_eq!(local, RepositoryLocation::Local("/srv/repo".into()));
    assert_eq!(local.to_string(), "/srv/repo");
    assert_eq!(String::from(local), "/srv/repo");
    for (text, backend) in [
        ("sftp:h:/r", RemoteBackend::Sftp),
        ("s3:h/b", RemoteBackend::S3),
        ("b2:b:p", RemoteBackend::B2),
        ("azure:c:/p", RemoteBackend::Azure),
        ("gs:b:/p", RemoteBackend::Gcs),
        ("rclone:r:p", RemoteBackend::Rclone),
        ("rest:http://h/r", RemoteBackend::Rest),
        ("webdav:https://h/p", RemoteBackend::Webdav),
    ] {
        let location = RepositoryLocation::try_from(text.to_owned()).unwrap();
        assert!(
            matches!(&location, RepositoryLocation::Remote { backend: b, .. } if *b == backend),
            "{text}: {location:?}"
        );
        assert_eq!(String::from(location), text);
    }
    let empty = RepositoryLocation::try_from("sftp:".to_owned()).unwrap_err();
    assert!(empty.contains("no target"), "{empty}");
    let unknown = RepositoryLocation::try_from("ftp:x".to_owned()).unwrap_err();
    assert!(
        unknown.contains("sftp:, s3:, b2:, azure:, gs:, rclone:, rest:, webdav:"),
        "{unknown}"
    );

    let tcp = DockerHost::try_from("http://127.0.0.1:2375/".to_owned()).unwrap();
    assert_eq!(tcp, DockerHost::Tcp("127.0.0.1:2375".into()));
    assert_eq!(tcp.to_string(), "tcp://127.0.0.1:2375");
    assert_eq!(String::from(tcp), "tcp://127.0.0.1:2375");
    let unix = DockerHost::try_from("/run/d.sock".to_owned()).unwrap();
    assert_eq!(unix.to_string(), "unix:///run/d.sock");
    assert!(DockerHost::try_from("tcp://".to_owned()).is_err());
}

/// The message of the first validation error of `text`, or a panic naming what parsed.
fn invalid(text: &str) -> String {
    match parse(text, Path::new("/etc/kd/c.toml")) {
        Err(ConfigError::Invalid { message, .. }) => message,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn config_sources_are_named_in_errors() {
    assert_eq!(ConfigSource::Flag.to_string(), "--config");
    assert_eq!(ConfigSource::EnvVar.to_string(), "$KOPI_DOCKA_CONFIG");
    assert_eq!(ConfigSource::Default.to_string(), "the default location");
    let dir = tempfile::tempdir().unwrap();
    let mut e = env(false);
    e.config_env = Some(dir.path().join("gone.toml"));
    let err = load(None, e).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::NotFound {
                source_rule: ConfigSource::EnvVar,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("(from $KOPI_DOCKA_CONFIG) does not exist"),
        "{err}"
    );
}

#[test]
fn an_existing_file_is_read_and_an_unreadable_one_is_an_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[repository]\ncompression = 5\n").unwrap();
    let loaded = load(Some(&file), env(false)).unwrap();
    assert_eq!(loaded.path.as_deref(), Some(file.as_path()));
    assert_eq!(loaded.source, ConfigSource::Flag);
    assert_eq!(loaded.config.repository.compression, 5);

    // A directory where the file should be, named or at the default path: an error, never
    // the built-in defaults.
    let mut e = env(false);
    e.xdg_config_home = Some(dir.path().to_path_buf());
    std::fs::create_dir_all(dir.path().join("kopi-docka/config.toml")).unwrap();
    for flag in [None, Some(dir.path())] {
        let err = load(flag, e.clone()).unwrap_err();
        assert!(matches!(err, ConfigError::Unreadable { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("(it is a directory: point to the config.toml inside)"),
            "{err}"
        );
    }
    // Root reads any file, so a permission error cannot be provoked here: the message the
    // user gets for one is checked on the error itself.
    let denied = ConfigError::Unreadable {
        path: file.clone(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert!(
        denied
            .to_string()
            .contains("run with sudo or as its owner; kopi-docka never falls back"),
        "{denied}"
    );
    let other = ConfigError::Unreadable {
        path: file,
        source: std::io::Error::other("disk on fire"),
    };
    assert!(other.to_string().ends_with("disk on fire"), "{other}");
}

#[test]
fn the_repository_from_the_command_line_and_environment_wins() {
    let cwd = std::env::current_dir().unwrap();
    let mut loaded = LoadedConfig::defaults_in(env(true));
    assert_eq!(
        loaded.repository_location(),
        RepositoryLocation::Local("/var/lib/kopi-docka/repository".into())
    );
    loaded.override_repository(None).unwrap();
    assert_eq!(
        loaded.repository_location(),
        RepositoryLocation::Local("/var/lib/kopi-docka/repository".into()),
        "nothing named: the default"
    );

    // Relative local paths are relative to the working directory; remote ones are kept.
    loaded.override_repository(Some("repo")).unwrap();
    assert_eq!(
        loaded.repository_location(),
        RepositoryLocation::Local(cwd.join("repo"))
    );
    loaded.override_repository(Some("sftp:u@h:/r")).unwrap();
    assert_eq!(loaded.repository_location().to_string(), "sftp:u@h:/r");

    let mut e = env(true);
    e.repository.location = Some("/from/env".into());
    e.repository.password_command = Some("pass show kd".into());
    let mut loaded = LoadedConfig::defaults_in(e.clone());
    loaded.config.repository.password_file = Some("/etc/kd/password".into());
    loaded.override_repository(None).unwrap();
    assert_eq!(loaded.repository_location().to_string(), "/from/env");
    assert_eq!(loaded.config.repository.password_file, None);
    assert_eq!(
        loaded.config.repository.password_command.as_deref(),
        Some("pass show kd")
    );
    loaded.override_repository(Some("/from/flag")).unwrap();
    assert_eq!(loaded.repository_location().to_string(), "/from/flag");

    e.repository.password_command = None;
    e.repository.password_file = Some("pw".into());
    let mut loaded = LoadedConfig::defaults_in(e.clone());
    loaded.config.repository.password_command = Some("pass show kd".into());
    loaded.override_repository(None).unwrap();
    assert_eq!(loaded.config.repository.password_file, Some(cwd.join("pw")));
    assert_eq!(loaded.config.repository.password_command, None);

    e.repository.password_command = Some("pass show kd".into());
    let err = LoadedConfig::defaults_in(e.clone())
        .override_repository(None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "$KOPI_DOCKA_PASSWORD_FILE: $KOPI_DOCKA_PASSWORD_COMMAND is set too; unset one of them"
    );
    let err = LoadedConfig::defaults_in(env(true))
        .override_repository(Some("ftp:x"))
        .unwrap_err();
    assert!(err.to_string().starts_with("--repo: "), "{err}");
    let mut e = env(true);
    e.repository.location = Some("ftp:x".into());
    let err = LoadedConfig::defaults_in(e)
        .override_repository(None)
        .unwrap_err();
    assert!(
        err.to_string().starts_with("$KOPI_DOCKA_REPOSITORY: "),
        "{err}"
    );
}

#[test]
fn parse_errors_point_at_line_and_column() {
    let text = "[backup]\n\nstop-timeout-seconds = \"ten\"\n";
    let err = parse(text, Path::new("/c.toml")).unwrap_err();
    let ConfigError::Parse { line, column, .. } = err else {
        panic!("{err:?}")
    };
    // The value starts on line 3, column 24.
    assert_eq!((line, column), (3, 24));
    let err = parse("compression = 3", Path::new("/c.toml")).unwrap_err();
    let ConfigError::Parse { line, column, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((line, column), (1, 1));
}

#[test]
fn notification_and_healthcheck_url_sources() {
    let ok = "[monitoring]\nhealthcheck-url-env = \"HC\"\n\
              [[notifications.targets]]\nurl-file = \"/etc/kd/url\"\nkind = \"ntfy\"\n\
              [[notifications.targets]]\nurl-env = \"HOOK\"\n\
              [[notifications.targets]]\nurl = \"https://h/x\"\nkind = \"telegram\"\n";
    assert!(parse(ok, Path::new("/c.toml")).is_ok());
    for (source, value) in [
        ("healthcheck-url", "\"https://hc/x\""),
        ("healthcheck-url-file", "\"/etc/kd/hc\""),
    ] {
        let two = format!("[monitoring]\nhealthcheck-url-env = \"HC\"\n{source} = {value}\n");
        assert!(invalid(&two).starts_with("[monitoring] sets more than one of"));
    }
    assert_eq!(
        invalid(
            "[[notifications.targets]]\nurl = \"u\"\n[[notifications.targets]]\nkind = \"ntfy\"\n"
        ),
        "[[notifications.targets]] number 2: set exactly one of url, url-file, url-env"
    );
    assert!(
        invalid("[[notifications.targets]]\nurl = \"u\"\nurl-env = \"E\"\n")
            .ends_with("set exactly one of url, url-file, url-env")
    );
    assert_eq!(
        invalid("[[notifications.targets]]\nurl = \"u\"\nkind = \"pager\"\n"),
        "[[notifications.targets]] number 1: kind `pager` is not one of webhook, ntfy, gotify, \
         discord, slack, telegram"
    );
}

#[test]
fn every_range_and_glob_is_checked_where_it_is_written() {
    for (text, expected) in [
        (
            "[backup]\ncompose-timeout-seconds = 0\n",
            "[backup] compose-timeout-seconds = 0 is outside 1..=86400",
        ),
        (
            "[backup]\nrun-time-limit-seconds = 604801\n",
            "[backup] run-time-limit-seconds = 604801 is outside 1..=604800",
        ),
        (
            "[units.web.services.db]\nstop-timeout-seconds = 0\n",
            "[units.\"web\".services.\"db\"] stop-timeout-seconds = 0 is outside 1..=86400",
        ),
        (
            "[repository]\ncompression = 23\n",
            "[repository] compression = 23 is outside 0..=22",
        ),
        (
            "[repository]\ncompression = -1\n",
            "[repository] compression = -1 is outside 0..=22",
        ),
        (
            "[units.web]\nexclude = [\"!keep\"]\n",
            "[units.\"web\"] exclude: exclude glob `!keep`: negations",
        ),
        (
            "[units.web.volumes.data]\nexclude = [\"../x\"]\n",
            "[units.\"web\".volumes.\"data\"] exclude: exclude glob `../x` leaves",
        ),
        (
            "[units.web.binds.\"/srv/x\"]\nexclude = [\"a[\"]\n",
            "[units.\"web\".binds.\"/srv/x\"] exclude: exclude glob `a[` is not a valid glob",
        ),
        (
            "[units.web.services.db]\nexclude = [\"\"]\n",
            "[units.\"web\".services.\"db\"] exclude: an empty exclude glob",
        ),
    ] {
        let message = invalid(text);
        assert!(message.starts_with(expected), "{text}: {message}");
    }
    let fine = "[repository]\ncompression = 0\n[units.web]\nexclude = [\"cache/**\"]\n\
                [units.web.services.db]\nexclude = [\"*.tmp\"]\nstop-timeout-seconds = 5\n";
    assert!(parse(fine, Path::new("/c.toml")).is_ok());
    assert!(parse("[repository]\ncompression = 22\n", Path::new("/c.toml")).is_ok());
}

#[test]
fn disaster_recovery_bundles_need_a_passphrase_and_resolve_relative_paths() {
    let needs = "[disaster-recovery] bundle-dir needs passphrase-file";
    assert!(invalid("[disaster-recovery]\nbundle-dir = \"/b\"\n").starts_with(needs));
    assert!(
        invalid("[disaster-recovery]\nbundle-dir = \"/b\"\npassphrase-file = \"/p\"\nkeep = 0\n")
            .starts_with(needs)
    );
    let cfg = parse(
        "[disaster-recovery]\nbundle-dir = \"bundles\"\npassphrase-file = \"../dr/pass\"\n\
         keep = 1\n[repository]\nenv-file = \"repo.env\"\nrclone-config = \"/etc/rc.conf\"\n\
         [units.app]\nenv-file = \"secrets/app.env\"\n[units.db]\nenv-file = \"/srv/db.env\"\n",
        Path::new("/etc/kd/c.toml"),
    )
    .unwrap();
    assert_eq!(
        cfg.units["app"].env_file.as_deref(),
        Some(Path::new("/etc/kd/secrets/app.env"))
    );
    assert_eq!(
        cfg.units["db"].env_file.as_deref(),
        Some(Path::new("/srv/db.env"))
    );
    let dr = &cfg.disaster_recovery;
    assert_eq!(dr.bundle_dir.as_deref(), Some(Path::new("/etc/kd/bundles")));
    assert_eq!(
        dr.passphrase_file.as_deref(),
        Some(Path::new("/etc/dr/pass"))
    );
    assert_eq!(
        cfg.repository.env_file.as_deref(),
        Some(Path::new("/etc/kd/repo.env"))
    );
    assert_eq!(
        cfg.repository.rclone_config.as_deref(),
        Some(Path::new("/etc/rc.conf"))
    );
    // A passphrase file without a bundle directory is allowed (export --passphrase-file).
    assert!(
        parse(
            "[disaster-recovery]\npassphrase-file = \"/p\"\n",
            Path::new("/c.toml")
        )
        .is_ok()
    );
}

#[test]
fn per_unit_stop_settings_and_container_hooks() {
    let ok = r#"
[units.cloud]
restore-state = "always"
stop-timeout-seconds = 120
start-timeout-seconds = 300
freeze-sockets = ["zoopa-ondemand@cloud.socket"]
[units.cloud.hooks]
pre-stop = { container = "app", user = "www-data", argv = ["php", "occ", "maintenance:mode", "--on"] }
verify = ["/usr/local/bin/check", "cloud"]
"#;
    let cfg = parse(ok, Path::new("/c.toml")).unwrap();
    let unit = &cfg.units["cloud"];
    assert_eq!(unit.restore_state, Some(RestoreState::Always));
    assert_eq!(
        (unit.stop_timeout_seconds, unit.start_timeout_seconds),
        (Some(120), Some(300))
    );
    assert_eq!(unit.freeze_sockets, ["zoopa-ondemand@cloud.socket"]);
    assert_eq!(
        unit.hooks.pre_stop,
        Some(Hook::Container(ContainerHook {
            container: "app".into(),
            user: Some("www-data".into()),
            argv: vec![
                "php".into(),
                "occ".into(),
                "maintenance:mode".into(),
                "--on".into()
            ],
        }))
    );
    for (text, expected) in [
        ("[units.a]\nrestore-state = \"sometimes\"\n", "sometimes"),
        (
            "[units.a]\nstop-timeout-seconds = 0\n",
            "stop-timeout-seconds = 0",
        ),
        (
            "[units.a]\nstart-timeout-seconds = 86401\n",
            "start-timeout-seconds = 86401",
        ),
        (
            "[units.a]\nfreeze-sockets = [\"a.service\"]\n",
            "is not a socket unit",
        ),
        // Each of these ends in `.socket` and is still no socket unit's name.
        (
            "[units.a]\nfreeze-sockets = [\".socket\"]\n",
            "`.socket` is not a socket unit",
        ),
        (
            "[units.a]\nfreeze-sockets = [\"--now.socket\"]\n",
            "`--now.socket` is not a socket unit",
        ),
        (
            "[units.a]\nfreeze-sockets = [\"a b.socket\"]\n",
            "`a b.socket` is not a socket unit",
        ),
        (
            "[hooks]\npre-stop = { container = \"app\", argv = [\"true\"] }\n",
            "belongs in a unit's table",
        ),
        (
            "[units.a.hooks]\npre-restore = { container = \"app\", argv = [\"true\"] }\n",
            "backup points only",
        ),
        (
            "[units.a.hooks]\nverify = { container = \"app\", argv = [] }\n",
            "give { container",
        ),
    ] {
        let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn unit_log_days_and_a_units_engine_keys_are_checked_when_loaded() {
    let ok = |text: &str| parse(text, Path::new("/etc/kd/c.toml")).unwrap();
    assert_eq!(
        ok("[backup]\nunit-log-days = 3660\n").backup.unit_log_days,
        3660
    );
    assert_eq!(ok("[backup]\nunit-log-days = 0\n").backup.unit_log_days, 0);
    let message = invalid("[backup]\nunit-log-days = 3661\n");
    assert!(
        message.contains("unit-log-days = 3661 is outside 0..=3660"),
        "{message}"
    );
    // A unit of the command engine without its job: refused as the config is loaded.
    let message = invalid("[units.app]\nengine = \"command\"\n");
    assert!(message.contains("app"), "{message}");
}
