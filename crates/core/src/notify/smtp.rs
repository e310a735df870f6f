//! Email notifications: the Apprise-style `mailto://` / `mailtos://` URL front end over
//! `lettre` (SMTP, STARTTLS or implicit TLS, AUTH PLAIN or LOGIN, MIME encoding of subjects and
//! bodies), on the rustls stack the rest of kopi-docka uses.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

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
        let mail = self.mail(message)?;
        let tls = TlsParameters::new(self.host.clone())
            .map_err(|e| format!("TLS setup for {}: {e}", self.host))?;
        let credentials = self.user.clone().zip(self.password.clone());
        let tls = if self.implicit {
            Tls::Wrapper(tls)
        } else if self.security == Security::Tls || (credentials.is_some() && !self.loopback()) {
            // mailto:// with a password: never sent in clear text to another host.
            Tls::Required(tls)
        } else {
            Tls::Opportunistic(tls)
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .hello_name(self.hello_name().await);
        if let Some((user, password)) = credentials {
            // Whichever the server offers: Microsoft 365's submission endpoint offers only LOGIN.
            transport = transport
                .credentials(Credentials::new(user, password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        transport
            .build()
            .send(mail)
            .await
            .map(drop)
            .map_err(|error| {
                format!(
                    "SMTP with {}:{} ({}): {}",
                    self.host,
                    self.port,
                    self.mode(),
                    crate::durable::error_chain(&error)
                )
            })
    }

    /// How the session is protected, for messages.
    fn mode(&self) -> &'static str {
        match (self.implicit, self.security) {
            (true, _) => "implicit TLS",
            (false, Security::Tls) => "STARTTLS required",
            (false, Security::Opportunistic) if self.password.is_some() && !self.loopback() => {
                "STARTTLS required to send the password; mailto:// never sends it in clear text"
            }
            (false, Security::Opportunistic) => "STARTTLS when offered",
        }
    }

    /// The message: UTF-8 subject encoded per RFC 2047, body in the transfer encoding that
    /// needs no 8BITMIME, Date and Message-ID set.
    fn mail(&self, message: &Message) -> Result<lettre::Message, String> {
        let mailbox = |address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|e| format!("email address `{address}`: {e}"))
        };
        let mut builder = lettre::Message::builder()
            .from(mailbox(&self.from)?)
            .subject(message.title.as_str())
            .message_id(None)
            .user_agent(concat!("kopi-docka/", env!("CARGO_PKG_VERSION")).to_owned());
        for to in &self.to {
            builder = builder.to(mailbox(to)?);
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| format!("building the email: {e}"))
    }

    /// The EHLO name (RFC 5321 4.1.4): the host's name when it is fully qualified, otherwise
    /// the address literal of the interface that reaches the server, never a bare word.
    async fn hello_name(&self) -> ClientId {
        let name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        if name.contains('.') && !name.ends_with('.') {
            return ClientId::Domain(name);
        }
        // A connected UDP socket sends nothing; it only asks the kernel for the route.
        let local = async {
            let server = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .ok()?
                .next()?;
            let unspecified: std::net::SocketAddr = if server.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = tokio::net::UdpSocket::bind(unspecified).await.ok()?;
            socket.connect(server).await.ok()?;
            socket.local_addr().ok()
        };
        match local.await.map(|a| a.ip()) {
            Some(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Some(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            None => ClientId::Domain(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_has_an_encoded_subject_a_message_id_and_an_ascii_body() {
        let e = Email::parse("smtp.example.com?to=ops@example.com", Security::Tls).unwrap();
        let mail = e
            .mail(&Message {
                title: "Sicherung fehlgeschlagen: Größe überschritten ✗".into(),
                body: "Einheit «wiki»: 3 Fehler\n.a line starting with a dot\n".into(),
                level: super::super::Level::Failure,
            })
            .unwrap();
        let text = String::from_utf8(mail.formatted()).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(
            text.contains("Subject: Sicherung fehlgeschlagen: =?utf-8?b?"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.contains("Date: "), "{text}");
        assert!(text.contains("From: kopi-docka@smtp.example.com"), "{text}");
        assert!(text.contains("To: ops@example.com"), "{text}");
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
