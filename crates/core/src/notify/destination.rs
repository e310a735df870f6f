//! Destinations: Apprise-style URLs parsed into the HTTP request (or SMTP session) each service
//! expects.

use std::time::Duration;

use serde_json::json;

use super::smtp::{Email, Security};
use super::{Level, Message, NotifyError};

/// Where one notification goes, with everything needed to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// JSON POST in Apprise's `json://` shape: `{version, title, message, type}`.
    Webhook {
        /// The endpoint.
        url: String,
    },
    /// ntfy: POST the body to `<server>/<topic>`, title and priority in headers.
    Ntfy {
        /// `<server>/<topic>`.
        url: String,
    },
    /// Gotify: POST JSON to `<server>/message?token=...`.
    Gotify {
        /// The full message endpoint, token included.
        url: String,
    },
    /// Discord webhook: POST `{content}`.
    Discord {
        /// The webhook URL.
        url: String,
    },
    /// Slack incoming webhook: POST `{text}`.
    Slack {
        /// The webhook URL.
        url: String,
    },
    /// Telegram bot API `sendMessage`.
    Telegram {
        /// `<api>/bot<token>/sendMessage`.
        url: String,
        /// Chat ids to send to.
        chats: Vec<String>,
    },
    /// Email over SMTP.
    Email(Email),
}

fn split_scheme(url: &str) -> Option<(&str, &str)> {
    url.split_once("://")
}

/// `rest` up to the first `?`, and the query pairs after it.
fn query(rest: &str) -> (&str, Vec<(String, String)>) {
    match rest.split_once('?') {
        Some((path, q)) => (
            path,
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_ascii_lowercase(), percent_decode(v))
                })
                .collect(),
        ),
        None => (rest, Vec::new()),
    }
}

/// Decodes `%XX` escapes as RFC 3986 does for every part of a URL: `+` stays a plus (only
/// HTML form bodies make it a space, and passwords and addresses such as `me+tag@x` contain
/// it), a `%` not followed by two hex digits stays as written, invalid UTF-8 becomes U+FFFD.
pub(super) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl Destination {
    /// Parses a URL; `kind` says which service an `http(s)://` URL belongs to.
    pub fn parse(url: &str, kind: Option<&str>) -> Result<Self, String> {
        let (scheme, rest) =
            split_scheme(url).ok_or_else(|| "not a URL (expected scheme://...)".to_owned())?;
        let scheme = scheme.to_ascii_lowercase();
        let tls = |secure: &str| if scheme == secure { "https" } else { "http" };
        let bad = |shape: &str| format!("{scheme}:// URLs look like {shape}");
        Ok(match scheme.as_str() {
            "http" | "https" => Self::parse_http(url, kind)?,
            "json" | "jsons" => Self::Webhook {
                url: format!("{}://{rest}", tls("jsons")),
            },
            "ntfy" | "ntfys" => {
                let (path, _) = query(rest);
                let path = path.trim_end_matches('/');
                if path.is_empty() {
                    return Err(bad("ntfys://host/topic or ntfy://topic"));
                }
                if path.contains('/') {
                    Self::Ntfy {
                        url: format!("{}://{path}", tls("ntfys")),
                    }
                } else {
                    // Just a topic: the public server, always over https.
                    Self::Ntfy {
                        url: format!("https://ntfy.sh/{path}"),
                    }
                }
            }
            "gotify" | "gotifys" => {
                let (path, _) = query(rest);
                let (base, token) = path
                    .trim_end_matches('/')
                    .rsplit_once('/')
                    .ok_or_else(|| bad("gotifys://host[/path]/token"))?;
                Self::Gotify {
                    url: format!("{}://{base}/message?token={token}", tls("gotifys")),
                }
            }
            "discord" => {
                let (path, _) = query(rest);
                let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
                let [id, token] = parts.as_slice() else {
                    return Err(bad("discord://webhook_id/webhook_token"));
                };
                Self::Discord {
                    url: format!("https://discord.com/api/webhooks/{id}/{token}"),
                }
            }
            "slack" => {
                let (path, _) = query(rest);
                let path = path.rsplit_once('@').map_or(path, |(_, p)| p);
                let parts: Vec<&str> = path
                    .trim_end_matches('/')
                    .split('/')
                    .filter(|p| !p.starts_with('#'))
                    .collect();
                let [a, b, c] = parts.as_slice() else {
                    return Err(bad("slack://TokenA/TokenB/TokenC"));
                };
                Self::Slack {
                    url: format!("https://hooks.slack.com/services/{a}/{b}/{c}"),
                }
            }
            "tgram" => {
                let (path, _) = query(rest);
                let mut parts = path.trim_end_matches('/').split('/');
                let token = parts.next().filter(|t| t.contains(':'));
                let chats: Vec<String> = parts.map(str::to_owned).collect();
                let Some(token) = token.filter(|_| !chats.is_empty()) else {
                    return Err(bad("tgram://bot_token/chat_id"));
                };
                Self::Telegram {
                    url: format!("https://api.telegram.org/bot{token}/sendMessage"),
                    chats,
                }
            }
            "mailto" | "mailtos" => Self::Email(Email::parse(
                rest,
                if scheme == "mailtos" {
                    Security::Tls
                } else {
                    Security::Opportunistic
                },
            )?),
            other => {
                return Err(format!(
                    "unsupported scheme `{other}://`; use http(s), json(s), ntfy(s), gotify(s), \
                     discord, slack, tgram or mailto(s)"
                ));
            }
        })
    }

    /// An `http(s)://` endpoint of the service `kind` (a JSON webhook by default).
    fn parse_http(url: &str, kind: Option<&str>) -> Result<Self, String> {
        let url = url.to_owned();
        Ok(match kind.unwrap_or("webhook") {
            "webhook" => Self::Webhook { url },
            "ntfy" => Self::Ntfy { url },
            "gotify" => Self::Gotify { url },
            "discord" => Self::Discord { url },
            "slack" => Self::Slack { url },
            "telegram" => {
                // The chat id travels in the query, as `chat_id=`; the rest is the
                // sendMessage endpoint.
                let (endpoint, pairs) = query(&url);
                let chats: Vec<String> = pairs
                    .into_iter()
                    .filter(|(k, _)| k == "chat_id")
                    .map(|(_, v)| v)
                    .collect();
                if chats.is_empty() {
                    return Err("a telegram http(s) URL needs ?chat_id=...".into());
                }
                Self::Telegram {
                    url: endpoint.to_owned(),
                    chats,
                }
            }
            other => return Err(format!("unknown kind `{other}`")),
        })
    }

    /// Delivers `message`, giving up after `timeout`.
    pub async fn send(&self, message: &Message, timeout: Duration) -> Result<(), NotifyError> {
        let what = self.describe();
        let delivery = |reason: String| NotifyError::Delivery {
            target: what.clone(),
            reason,
        };
        if let Self::Email(email) = self {
            return tokio::time::timeout(timeout, email.send(message))
                .await
                .map_err(|_| delivery(format!("no answer within {}s", timeout.as_secs())))?
                .map_err(delivery);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("kopi-docka/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| delivery(e.without_url().to_string()))?;
        let text = format!("{}\n\n{}", message.title, message.body);
        let requests = match self {
            Self::Webhook { url } => vec![client.post(url).json(&json!({
                "version": "1.0",
                "title": message.title,
                "message": message.body,
                "type": message.level.word(),
            }))],
            Self::Ntfy { url } => {
                let (priority, tags) = match message.level {
                    Level::Success => ("default", "white_check_mark"),
                    Level::Warning => ("high", "warning"),
                    Level::Failure => ("urgent", "rotating_light"),
                };
                vec![
                    client
                        .post(url)
                        .header("Title", ascii_header(&message.title))
                        .header("Priority", priority)
                        .header("Tags", tags)
                        .body(message.body.clone()),
                ]
            }
            Self::Gotify { url } => vec![client.post(url).json(&json!({
                "title": message.title,
                "message": message.body,
                "priority": match message.level { Level::Success => 2, Level::Warning => 5, Level::Failure => 8 },
            }))],
            Self::Discord { url } => {
                // Discord rejects content over 2000 characters.
                let content: String = format!("**{}**\n{}", message.title, message.body)
                    .chars()
                    .take(1990)
                    .collect();
                vec![client.post(url).json(&json!({ "content": content }))]
            }
            Self::Slack { url } => {
                vec![client.post(url).json(&json!({ "text": format!("*{}*\n{}", message.title, message.body) }))]
            }
            Self::Telegram { url, chats } => chats
                .iter()
                .map(|chat| {
                    // Telegram rejects messages over 4096 characters.
                    let text: String = text.chars().take(4000).collect();
                    client.post(url).json(&json!({ "chat_id": chat, "text": text }))
                })
                .collect(),
            Self::Email(_) => Vec::new(),
        };
        for request in requests {
            let response = request
                .send()
                .await
                .map_err(|e| delivery(e.without_url().to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(delivery(format!("the server answered HTTP {status}")));
            }
        }
        Ok(())
    }

    /// The service, for messages (no secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Webhook { .. } => "webhook".into(),
            Self::Ntfy { .. } => "ntfy".into(),
            Self::Gotify { .. } => "gotify".into(),
            Self::Discord { .. } => "discord".into(),
            Self::Slack { .. } => "slack".into(),
            Self::Telegram { .. } => "telegram".into(),
            Self::Email(_) => "email".into(),
        }
    }
}

/// HTTP headers must be visible ASCII: other characters become `?`.
fn ascii_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(d: &Destination) -> String {
        match d {
            Destination::Webhook { url }
            | Destination::Ntfy { url }
            | Destination::Gotify { url }
            | Destination::Discord { url }
            | Destination::Slack { url }
            | Destination::Telegram { url, .. } => url.clone(),
            Destination::Email(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn apprise_urls() {
        let p = |u: &str| url(&Destination::parse(u, None).unwrap());
        assert_eq!(
            p("jsons://hooks.example.com/x?y=1"),
            "https://hooks.example.com/x?y=1"
        );
        assert_eq!(p("json://10.0.0.2:8080/hook"), "http://10.0.0.2:8080/hook");
        assert_eq!(p("https://example.com/hook"), "https://example.com/hook");
        assert_eq!(
            p("ntfys://ntfy.example.com/backups"),
            "https://ntfy.example.com/backups"
        );
        assert_eq!(
            p("ntfy://user:pw@host:81/backups"),
            "http://user:pw@host:81/backups"
        );
        assert_eq!(p("ntfy://backups"), "https://ntfy.sh/backups");
        assert_eq!(
            p("gotifys://push.example.com/sub/TOKEN"),
            "https://push.example.com/sub/message?token=TOKEN"
        );
        assert_eq!(
            p("discord://123/abc"),
            "https://discord.com/api/webhooks/123/abc"
        );
        assert_eq!(
            p("slack://T1/B2/C3/#general"),
            "https://hooks.slack.com/services/T1/B2/C3"
        );
        assert_eq!(
            p("tgram://123456:ABC-def/-100200"),
            "https://api.telegram.org/bot123456:ABC-def/sendMessage"
        );
        let Destination::Telegram { chats, .. } =
            Destination::parse("tgram://1:a/5/6", None).unwrap()
        else {
            panic!("telegram");
        };
        assert_eq!(chats, ["5", "6"]);
        let Destination::Telegram { chats, url } = Destination::parse(
            "http://127.0.0.1:9/bot1:a/sendMessage?chat_id=42",
            Some("telegram"),
        )
        .unwrap() else {
            panic!("telegram");
        };
        assert_eq!(
            (chats.as_slice(), url.as_str()),
            (
                &["42".to_owned()][..],
                "http://127.0.0.1:9/bot1:a/sendMessage"
            )
        );
        for bad in [
            "nope",
            "discord://only-id",
            "tgram://no-colon/1",
            "gopher://x",
            "slack://a/b",
        ] {
            assert!(Destination::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        // RFC 3986: `+` is a plus (only HTML forms make it a space); a stray `%` stays.
        assert_eq!(percent_decode("a%40b.c+d%"), "a@b.c+d%");
        assert_eq!(percent_decode("pa+ss%2B%20%zz%4"), "pa+ss+ %zz%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
        // Invalid UTF-8 is replaced, not an error.
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }
}
