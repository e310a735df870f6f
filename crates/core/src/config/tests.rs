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
