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

/// A moto server of the caller's own that checks credentials like AWS does (IAM
/// authentication on), with one user allowed everything on S3 and one bucket.
pub struct AuthMoto {
    /// The server.
    pub server: Server,
    /// The user's access key id.
    pub key_id: String,
    /// The user's secret key.
    pub secret: String,
    /// The bucket, created before authentication began.
    pub bucket: String,
}

/// Requests moto serves without authentication before it starts checking: create the user,
/// its access key, its policy, and the bucket.
const SETUP_REQUESTS: &str = "4";

/// Starts a moto that refuses unknown keys and bad signatures with 403, after creating
/// (unauthenticated, as moto allows for the first [`SETUP_REQUESTS`] requests) an IAM user
/// with an S3 policy, its access key, and `bucket`.
pub fn start_moto_with_auth(bucket: &str) -> AuthMoto {
    let server = Server::start(
        &server_bin("moto_server"),
        &["-H", "127.0.0.1", "-p", "0"],
        &[("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS)],
        &Ready {
            marker: "Running on http://127.0.0.1:",
            port_in_line: true,
        },
    );
    // moto routes an unsigned request by the service named in its Authorization header.
    let iam = |form: &str| {
        let (status, body) = http(
            server.port,
            "POST",
            "/",
            &[
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, \
                     SignedHeaders=host, Signature=setup",
                ),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            format!("{form}&Version=2010-05-08").as_bytes(),
        );
        assert_eq!(status, 200, "IAM {form}: {body}");
        body
    };
    iam("Action=CreateUser&UserName=kdtest");
    let key = iam("Action=CreateAccessKey&UserName=kdtest");
    let field = |name: &str| {
        key.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("no {name} in {key}"))
            .to_owned()
    };
    let (key_id, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    iam(
        "Action=PutUserPolicy&UserName=kdtest&PolicyName=s3&PolicyDocument=\
         %7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A\
         %22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D",
    );
    server.create_bucket(bucket);
    AuthMoto {
        server,
        key_id,
        secret,
        bucket: bucket.to_owned(),
    }
}
