//! `rclone serve restic` (a REST server) and `rclone serve webdav`, Debian's rclone.

use std::sync::OnceLock;

use super::{Ready, Server, server_bin};

/// User name the shared REST and `WebDAV` servers require.
pub const REST_USER: &str = "kdrest";
/// Its password.
pub const REST_PASS: &str = "kdrest-pass";

/// The test binary's shared `rclone serve restic` (basic auth [`REST_USER`]/[`REST_PASS`]);
/// repositories are created in subpaths on init.
pub fn rest() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| serve("restic", "Serving restic REST API on"))
}

/// The test binary's shared `rclone serve webdav` (same credentials).
pub fn webdav() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| serve("webdav", "WebDav Server started on"))
}

fn serve(kind: &str, marker: &'static str) -> Server {
    Server::start(
        &server_bin("rclone"),
        &[
            "serve",
            kind,
            "{dir}",
            "--addr",
            "127.0.0.1:0",
            "--user",
            REST_USER,
            "--pass",
            REST_PASS,
        ],
        &[],
        &Ready {
            marker,
            port_in_line: true,
        },
    )
}
