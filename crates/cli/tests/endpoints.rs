//! Engine endpoints as the docker CLI reads them: `DOCKER_HOST` at a socket that is not the
//! default one, TLS with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` (a locally made CA, the real
//! engine behind a TLS front on loopback), and the error when nothing answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{DockerResources, LoggedChild, docker, kopi_docka, run};

/// `units --json` with `envs` and the config file `dir/config.toml` when there is one;
/// (exit code, stdout, stderr).
fn units(envs: &[(&str, &str)], dir: &Path) -> (i32, String, String) {
    let mut cmd = kopi_docka();
    cmd.args(["units", "--json"]);
    let config = dir.join("config.toml");
    if config.exists() {
        cmd.arg("--config").arg(config);
    }
    cmd.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env("XDG_CONFIG_HOME", dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn has_unit(report: &Value, name: &str) -> bool {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == name)
}

#[test]
fn docker_host_names_a_socket_at_a_non_default_path() {
    if !support::docker_tests_enabled("docker_host_names_a_socket_at_a_non_default_path") {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let name = format!("{prefix}-solo");
    support::idle_with_volume(&name);
    let dir = tempfile::tempdir().unwrap();
    // The engine's socket under another name, as a rootless or relocated engine has it.
    let sock = dir.path().join("run/engine.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/var/run/docker.sock", &sock).unwrap();
    let host = format!("unix://{}", sock.display());

    let (code, stdout, stderr) = units(&[("DOCKER_HOST", &host)], dir.path());
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["engine"], host.as_str());
    assert_eq!(report["engine_identity"]["kind"], "docker");
    assert!(has_unit(&report, &name), "{stdout}");
}

#[test]
fn nothing_answering_lists_every_socket_tried() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // `nobody` has no rootless engine: every Podman socket of theirs is missing.
    std::fs::write(
        &config,
        "[docker]\nengine = \"podman\"\nuser = \"nobody\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = units(&[], dir.path());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for expected in [
        "no container engine found; tried:",
        "unix:///run/user/65534/podman/podman.sock",
        "unix:///tmp/podman-run-65534/podman/podman.sock",
        "podman.socket",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl
/// in `dir` (`ca.pem`, `server.pem`, `server-key.pem`, `cert.pem`, `key.pem`).
fn make_pki(dir: &Path, cn: &str) {
    let ssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir));
    };
    ssl(&["genrsa", "-out", "ca-key.pem", "2048"]);
    ssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca-key.pem",
        "-days",
        "2",
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        ssl(&["genrsa", "-out", &format!("{name}-key.pem"), "2048"]);
        ssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-subj",
            &format!("/CN=kdtest-{name}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        ssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            &format!("{name}.pem"),
        ]);
    }
    std::fs::copy(dir.join("client.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(dir.join("client-key.pem"), dir.join("key.pem")).unwrap();
}

/// stunnel speaking TLS on a free loopback port (client certificates required, checked
/// against `ca.pem`) in front of the engine's socket: a TLS engine endpoint as dockerd's
/// `--tlsverify` makes one, without touching the engine. The child (killed on drop) and the port.
fn tls_front(pki: &Path) -> (LoggedChild, u16) {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = pki.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 7\n[engine]\naccept = 127.0.0.1:{port}\n\
                 connect = /var/run/docker.sock\ncert = {0}/server.pem\nkey = {0}/server-key.pem\n\
                 CAfile = {0}/ca.pem\nverifyChain = yes\nrequireCert = yes\n",
                pki.display()
            ),
        )
        .unwrap();
        let mut child = LoggedChild::spawn(Command::new("stunnel").arg(&conf));
        let line = child.wait_for_line("stunnel listens or fails", |l| {
            l.contains(&format!("bound to 127.0.0.1:{port}")) || l.contains("LOG3")
        });
        if !line.contains("LOG3") {
            return (child, port);
        }
    }
    panic!("stunnel found no free port");
}

#[test]
fn tls_endpoint_is_verified_with_the_docker_cli_variables() {
    if !support::docker_tests_enabled("tls_endpoint_is_verified_with_the_docker_cli_variables") {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let name = format!("{prefix}-tls");
    support::idle_with_volume(&name);
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_pki(&pki, "kdtest-ca");
    let (_front, port) = tls_front(&pki);
    let host = format!("tcp://127.0.0.1:{port}");
    let certs = pki.display().to_string();

    let (code, stdout, stderr) = units(
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &certs),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["engine"], host.as_str());
    assert!(has_unit(&report, &name), "{stdout}");
    // The same through the docker CLI, so the test proves the front is a real TLS engine.
    let cli = docker(&[
        "--tlsverify",
        "--tlscacert",
        &format!("{certs}/ca.pem"),
        "--tlscert",
        &format!("{certs}/cert.pem"),
        "--tlskey",
        &format!("{certs}/key.pem"),
        "-H",
        &host,
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(cli, name);

    // Another CA: the engine's certificate is refused, and the error says where and why.
    let stranger = dir.path().join("stranger");
    std::fs::create_dir(&stranger).unwrap();
    make_pki(&stranger, "kdtest-stranger-ca");
    let (code, stdout, stderr) = units(
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &stranger.display().to_string()),
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!("cannot reach the container engine at {host}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // TLS off against a TLS engine: no answer, and the hint names the TLS variables.
    let (code, _, stderr) = units(&[("DOCKER_HOST", &host)], dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("DOCKER_TLS_VERIFY=1"), "{stderr}");

    // TLS on without the files: says which file is missing.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = units(
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &empty.display().to_string()),
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}/ca.pem does not exist", empty.display())),
        "{stderr}"
    );
}
