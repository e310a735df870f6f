//! A minimal SMTP client: one message per session, STARTTLS or implicit TLS, AUTH PLAIN.
//! Small enough to read in one sitting, so no mail library is needed for one email per run.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::Message;
use super::destination::percent_decode;

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `mailto://`: STARTTLS when the server offers it; a password is only ever sent over
    /// TLS or to a loopback server.
    Opportunistic,
    /// `mailtos://`: implicit TLS on port 465, STARTTLS (required) on any other port.
    Tls,
}

/// An SMTP destination.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    host: String,
    port: u16,
    security: Security,
    /// TLS from the first byte (SMTPS) instead of STARTTLS.
    implicit: bool,
    user: Option<String>,
    password: Option<String>,
    from: String,
    to: Vec<String>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("implicit", &self.implicit)
            .field("user", &self.user)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Email {
    /// Parses the part after `mailto://`:
    /// `[user[:password]@]host[:port][/to][?to=a,b&from=c&mode=ssl|starttls]`.
    pub fn parse(rest: &str, mut security: Security) -> Result<Self, String> {
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => {
                let (u, p) = info
                    .split_once(':')
                    .map_or((info, None), |(u, p)| (u, Some(p)));
                (Some(percent_decode(u)), p.map(percent_decode))
            }
            None => (None, None),
        };
        let default_port = match security {
            Security::Opportunistic => 25,
            Security::Tls => 465,
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("port `{p}` is not a number"))?,
            ),
            None => (hostport.to_owned(), default_port),
        };
        if host.is_empty() {
            return Err("mailto:// URLs look like mailtos://user:password@smtp.example.com:587?to=me@example.com".into());
        }
        let mut to: Vec<String> = Vec::new();
        let mut from = None;
        // Implicit TLS is the convention on 465; Apprise's `mode=` says so explicitly.
        let mut implicit = security == Security::Tls && port == 465;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k.to_ascii_lowercase().as_str() {
                "to" => to.extend(percent_decode(v).split(',').map(|s| s.trim().to_owned())),
                "from" => from = Some(percent_decode(v)),
                "mode" => match v.to_ascii_lowercase().as_str() {
                    "ssl" | "smtps" | "implicit" => {
                        implicit = true;
                        security = Security::Tls;
                    }
                    "starttls" | "tls" => {
                        implicit = false;
                        security = Security::Tls;
                    }
                    other => {
                        return Err(format!("mode `{other}` is not ssl or starttls"));
                    }
                },
                _ => {}
            }
        }
        if !path.is_empty() {
            to.extend(percent_decode(path).split(',').map(|s| s.trim().to_owned()));
        }
        let own = user.as_ref().map(|u| {
            if u.contains('@') {
                u.clone()
            } else {
                format!("{u}@{host}")
            }
        });
        if to.is_empty() {
            to.extend(own.clone());
        }
        let from = from.or(own).unwrap_or_else(|| format!("kopi-docka@{host}"));
        to.retain(|t| !t.is_empty());
        if to.is_empty() {
            return Err("no recipient: add ?to=you@example.com".into());
        }
        Ok(Self {
            host,
            port,
            security,
            implicit,
            user,
            password,
            from,
            to,
        })
    }

    fn loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Delivers one message.
    pub async fn send(&self, message: &Message) -> Result<(), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        let mut tls = self.implicit;
        let stream: Box<dyn Stream> = if self.implicit {
            Box::new(self.tls(tcp).await?)
        } else {
            Box::new(tcp)
        };
        let mut session = Session::new(stream);
        session.expect(220).await?;
        let mut caps = session.command("EHLO kopi-docka", 250).await?;
        let offers_tls = caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS"));
        if !tls && (offers_tls || self.security == Security::Tls) {
            if !offers_tls {
                return Err(format!(
                    "{} does not offer STARTTLS (mailtos:// requires TLS)",
                    self.host
                ));
            }
            session.command("STARTTLS", 220).await?;
            let plain = session.into_inner();
            session = Session::new(Box::new(self.tls(plain).await?));
            tls = true;
            caps = session.command("EHLO kopi-docka", 250).await?;
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            if !tls && !self.loopback() {
                return Err(format!(
                    "{} offers no TLS; kopi-docka does not send a password in clear text (use \
                     mailtos://)",
                    self.host
                ));
            }
            if !caps
                .iter()
                .any(|l| l.to_ascii_uppercase().starts_with("AUTH"))
            {
                return Err(format!("{} does not offer AUTH", self.host));
            }
            let token = base64(format!("\0{user}\0{password}").as_bytes());
            session
                .command_secret(&format!("AUTH PLAIN {token}"), 235)
                .await?;
        }
        session
            .command(&format!("MAIL FROM:<{}>", self.from), 250)
            .await?;
        for to in &self.to {
            session.command(&format!("RCPT TO:<{to}>"), 250).await?;
        }
        session.command("DATA", 354).await?;
        session.data(&self.render(message)).await?;
        session.expect(250).await?;
        // The message is accepted; a failed QUIT changes nothing.
        if let Err(error) = session.command("QUIT", 221).await {
            tracing::debug!(%error, "SMTP QUIT");
        }
        Ok(())
    }

    async fn tls<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        plain: S,
    ) -> Result<tokio_rustls::client::TlsStream<S>, String> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        // An explicit provider: more than one is compiled in, so rustls cannot pick one itself.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_platform_verifier()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("TLS server name {}: {e}", self.host))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, plain)
            .await
            .map_err(|e| format!("TLS with {}: {e}", self.host))
    }

    fn render(&self, message: &Message) -> String {
        let date = jiff::Zoned::now().strftime("%a, %d %b %Y %H:%M:%S %z");
        let subject: String = message
            .title
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let mut text = format!(
            "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
             X-Mailer: kopi-docka\r\n\r\n",
            self.from,
            self.to.join(", ")
        );
        for line in message.body.lines() {
            // Dot-stuffing: a line starting with `.` gets another one (RFC 5321 4.5.2).
            if line.starts_with('.') {
                text.push('.');
            }
            text.push_str(line);
            text.push_str("\r\n");
        }
        text
    }
}

struct Session {
    stream: BufReader<Box<dyn Stream>>,
}

impl Session {
    fn new(stream: Box<dyn Stream>) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    fn into_inner(self) -> Box<dyn Stream> {
        self.stream.into_inner()
    }

    /// Reads one (possibly multi-line) reply; returns its text lines after the code.
    async fn expect(&mut self, code: u16) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .stream
                .read_line(&mut line)
                .await
                .map_err(|e| format!("SMTP read: {e}"))?;
            if n == 0 {
                return Err("the SMTP server closed the connection".into());
            }
            let line = line.trim_end();
            let got: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                if got != code {
                    return Err(format!("SMTP server answered `{line}` (expected {code})"));
                }
                return Ok(lines);
            }
        }
    }

    async fn write(&mut self, text: &str) -> Result<(), String> {
        let stream = self.stream.get_mut();
        stream
            .write_all(text.as_bytes())
            .await
            .and(stream.flush().await)
            .map_err(|e| format!("SMTP write: {e}"))
    }

    async fn command(&mut self, line: &str, code: u16) -> Result<Vec<String>, String> {
        self.write(&format!("{line}\r\n")).await?;
        self.expect(code).await
    }

    /// Like `command`, but an error never repeats what was sent.
    async fn command_secret(&mut self, line: &str, code: u16) -> Result<Vec<String>, String> {
        self.write(&format!("{line}\r\n")).await?;
        self.expect(code)
            .await
            .map_err(|e| format!("authentication failed: {e}"))
    }

    async fn data(&mut self, text: &str) -> Result<(), String> {
        self.write(text).await?;
        self.write(".\r\n").await
    }
}

/// Standard base64 with padding (RFC 4648), for AUTH PLAIN.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn plus_is_a_plus_in_every_part() {
        let e = Email::parse(
            "me+kd:pa+ss@smtp.example.com:587/ops+alerts@example.com?from=kd+host@example.com",
            Security::Tls,
        )
        .unwrap();
        assert_eq!(e.user.as_deref(), Some("me+kd"));
        assert_eq!(e.password.as_deref(), Some("pa+ss"));
        assert_eq!(e.to, ["ops+alerts@example.com"]);
        assert_eq!(e.from, "kd+host@example.com");
        let e = Email::parse(
            "me:p%2Bs%20s%3A%25@smtp.example.com?to=a+b@x.org",
            Security::Tls,
        )
        .unwrap();
        assert_eq!(e.password.as_deref(), Some("p+s s:%"));
        assert_eq!(e.to, ["a+b@x.org"]);
    }

    #[test]
    fn mailto_urls() {
        let e = Email::parse(
            "me%40example.com:p%40ss@smtp.example.com:587?to=a@x.org,b@y.org",
            Security::Tls,
        )
        .unwrap();
        assert_eq!((e.host.as_str(), e.port), ("smtp.example.com", 587));
        assert_eq!(e.user.as_deref(), Some("me@example.com"));
        assert_eq!(e.password.as_deref(), Some("p@ss"));
        assert_eq!(e.to, ["a@x.org", "b@y.org"]);
        assert_eq!(e.from, "me@example.com");
        assert!(!format!("{e:?}").contains("p@ss"));
        let e = Email::parse(
            "127.0.0.1:2525/ops@example.com?from=kd@host",
            Security::Opportunistic,
        )
        .unwrap();
        assert_eq!(
            (e.port, e.to[0].as_str(), e.from.as_str()),
            (2525, "ops@example.com", "kd@host")
        );
        assert!(e.loopback());
        assert_eq!(
            Email::parse("smtp.example.com", Security::Tls).unwrap_err(),
            "no recipient: add ?to=you@example.com"
        );
    }
}
