//! Who may use the dashboard: the token, the session cookie made from it, or a trusted
//! reverse proxy; and the anti-CSRF check of state-changing requests.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kopi_docka_core::state::StateDir;

use crate::WebError;
use crate::routes::App;

/// The session cookie's name.
const COOKIE: &str = "kopi_docka_session";

/// The header an API client sends the anti-CSRF token in (forms send a `csrf` field).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`: sent deliberately, never by a browser on its own.
    Bearer,
    /// The session cookie: a browser sends it on its own, so POSTs need the CSRF token.
    Cookie,
    /// The trusted proxy header from a loopback peer: like the cookie.
    Proxy,
}

/// `<state_dir>/web-token`.
pub fn token_path(state_dir: &StateDir) -> PathBuf {
    state_dir.path().join("web-token")
}

/// The token from its file, or a new one written there (0600, atomically); true when new.
pub fn load_or_create_token(state_dir: &StateDir) -> Result<(String, bool), WebError> {
    let path = token_path(state_dir);
    let error = |source| WebError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let token = random_hex(32).map_err(error)?;
    std::fs::create_dir_all(state_dir.path()).map_err(error)?;
    // NamedTempFile is created 0600 in the same directory: the token is never readable by
    // others, and a crash leaves either no file or a whole one.
    let mut file = tempfile::NamedTempFile::new_in(state_dir.path()).map_err(error)?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(&path).map_err(|e| error(e.error))?;
    Ok((token, true))
}

/// `bytes` random bytes from the kernel, as hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf
        .iter()
        .fold(String::with_capacity(bytes * 2), |mut hex, b| {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        }))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The middleware in front of every route: logs in from `?token=`, else needs a credential.
pub async fn require(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(token) = query_token(request.uri().query()) {
        return login(&app, request.uri().path(), &token);
    }
    let Some(credential) = credential(&app, request.headers(), peer) else {
        return unauthorized();
    };
    if request.method() != Method::GET
        && request.method() != Method::HEAD
        && credential != Credential::Bearer
        && !same_origin(request.headers())
    {
        return (StatusCode::FORBIDDEN, "cross-origin request refused\n").into_response();
    }
    request.extensions_mut().insert(credential);
    next.run(request).await
}

/// The credential a request carries, if any is valid.
fn credential(app: &App, headers: &HeaderMap, peer: SocketAddr) -> Option<Credential> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        // A wrong bearer token is a failure, not a reason to look at cookies.
        let bearer = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        return same_secret(bearer, &app.token).then_some(Credential::Bearer);
    }
    if cookies(headers).any(|(name, value)| name == COOKIE && same_secret(value, &app.session)) {
        return Some(Credential::Cookie);
    }
    if let Some(name) = &app.settings.trusted_header
        && peer.ip().is_loopback()
        && headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty())
    {
        return Some(Credential::Proxy);
    }
    None
}

/// True when the POST may come from a browser form of ours: the anti-CSRF token matches, or
/// the credential is a bearer token.
pub fn csrf_ok(app: &App, credential: Credential, sent: Option<&str>) -> bool {
    credential == Credential::Bearer || sent.is_some_and(|s| same_secret(s, &app.csrf))
}

/// `Origin`, when a browser sends one, must name the host the request went to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    // Behind a proxy the Host may be rewritten; the forwarded host is what the browser saw.
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !origin_host.is_empty() && (origin_host == host || origin_host == forwarded)
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value.to_owned())
}

/// `?token=` right: the session cookie, and the same page without the token in its address
/// (so it stays out of the history and of Referer headers). Wrong: 401.
fn login(app: &App, path: &str, token: &str) -> Response {
    if !same_secret(token, &app.token) {
        return unauthorized();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        app.session
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    let location = if path.starts_with('/') { path } else { "/" };
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 Unauthorized: open the dashboard once as /?token=<token>, or send \
         Authorization: Bearer <token>; the token is in the file web-token in the daemon's \
         state directory\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn the_token_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let (token, created) = load_or_create_token(&state).unwrap();
        assert!(created);
        assert_eq!(token.len(), 64);
        let mode = std::fs::metadata(token_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_create_token(&state).unwrap();
        assert!(!created);
        assert_eq!(again, token);
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8470"));
        assert!(
            same_origin(&headers),
            "no Origin: not a cross-site browser request"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8470"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
