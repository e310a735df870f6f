//! `moto_server`: an S3 API on loopback (any access key is accepted; data in memory).

use std::sync::OnceLock;

use super::{Ready, Server, http, server_bin};

/// The test binary's shared moto server.
pub fn moto() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start_moto)
}

/// A moto server of the caller's own (to kill it).
pub fn start_moto() -> Server {
    Server::start(
        &server_bin("moto_server"),
        &["-H", "127.0.0.1", "-p", "0"],
        &[],
        &Ready {
            marker: "Running on http://127.0.0.1:",
            port_in_line: true,
        },
    )
}

impl Server {
    /// Creates an S3 bucket (moto takes unsigned requests; opendal never creates buckets).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }
}
