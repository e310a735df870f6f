//! Azurite's blob service (npm azurite 3.35.0), always with `--disableTelemetry` (without it,
//! it reports to Microsoft).

use std::process::Command;
use std::sync::OnceLock;

use super::{Ready, Server, server_bin};

/// The emulator's well-known account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known key (public, in Microsoft's docs).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The test binary's shared Azurite; the endpoint is `<url>/devstoreaccount1`.
pub fn azurite() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start(
            &server_bin("azurite-blob"),
            &[
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "{port}",
                "--location",
                "{dir}",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
            ],
            &[],
            &Ready {
                marker: "successfully listens on",
                port_in_line: false,
            },
        )
    })
}

/// A SharedKey-signed container create (Azurite refuses unsigned ones; opendal creates none),
/// with Debian's python3 standard library.
const CREATE_CONTAINER: &str = r#"
import base64, hashlib, hmac, sys, urllib.request, urllib.error
from email.utils import formatdate
A, K, port, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
h = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
sts = ("PUT\n\n\n\n\napplication/octet-stream\n" + "\n" * 6
       + "".join(f"{k}:{v}\n" for k, v in sorted(h.items()))
       + f"/{A}/{A}/{name}\nrestype:container")
sig = base64.b64encode(hmac.new(base64.b64decode(K), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/{A}/{name}?restype=container", method="PUT",
      data=b"", headers={**h, "Content-Type": "application/octet-stream",
      "Authorization": f"SharedKey {A}:{sig}"})
print(urllib.request.urlopen(req).status)
"#;

impl Server {
    /// `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn azure_endpoint(&self) -> String {
        format!("{}/{AZURITE_ACCOUNT}", self.url())
    }

    /// Creates a blob container.
    pub fn create_container(&self, name: &str) {
        crate::process::run(Command::new("/usr/bin/python3").args([
            "-c",
            CREATE_CONTAINER,
            AZURITE_ACCOUNT,
            AZURITE_KEY,
            &self.port.to_string(),
            name,
        ]));
    }
}
