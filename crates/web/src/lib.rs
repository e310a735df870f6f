//! The web dashboard and JSON API the daemon serves when `[web] listen` is set.
//!
//! Everything it shows comes from the core's own calls (discovery, run records, restore
//! points, the metrics renderer); its two actions, "back up now" and "drill", run the same
//! `kopi-docka` command the daemon's timer runs, as a child process that takes the run lock
//! itself. So the dashboard holds no copy of backup or drill logic, and a dashboard backup
//! and a scheduled one can never overlap.
//!
//! Rules this crate owns:
//! - Every route, pages, API and `/metrics` alike, answers 401 without a credential: the
//!   token (a 0600 file in the state directory, made on first start), the session cookie set
//!   from it, or a trusted reverse-proxy header from a loopback peer.
//! - A POST authenticated by cookie or proxy header also needs the anti-CSRF token (and a
//!   same-origin `Origin`); a bearer token is not sent by browsers on their own.
//! - A non-loopback listen address is refused unless `[web] allow-public = true`.

mod auth;
mod data;
mod drills;
mod html;
mod jobs;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::daemon::BackupCommand;

/// What the dashboard runs with.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The configuration (the daemon's, at start).
    pub loaded: LoadedConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// A reverse proxy's header that authenticates a request from a loopback peer.
    pub trusted_header: Option<axum::http::HeaderName>,
    /// `kopi-docka` with its global options (config, verbosity, repository): backups and
    /// drills append their subcommand to it.
    pub command: BackupCommand,
}

impl WebSettings {
    /// The settings `[web]` asks for; `None` when the dashboard is off (no `listen`).
    pub fn from_config(
        loaded: &LoadedConfig,
        command: BackupCommand,
    ) -> Result<Option<Self>, WebError> {
        let web = &loaded.config.web;
        let Some(listen) = web.listen else {
            return Ok(None);
        };
        if !listen.ip().is_loopback() && !web.allow_public {
            return Err(WebError::Public(listen));
        }
        let trusted_header = web
            .trusted_header
            .as_deref()
            .map(|name| {
                axum::http::HeaderName::try_from(name)
                    .map_err(|_| WebError::Header(name.to_owned()))
            })
            .transpose()?;
        Ok(Some(Self {
            loaded: loaded.clone(),
            listen,
            trusted_header,
            command,
        }))
    }
}

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `listen` is reachable from the network and `allow-public` is not set.
    #[error(
        "[web] listen = \"{0}\" is not a loopback address, so the dashboard would be reachable \
         from the network: listen on 127.0.0.1 (behind a reverse proxy for remote access), or \
         set [web] allow-public = true"
    )]
    Public(SocketAddr),
    /// `trusted-header` is no header name.
    #[error("[web] trusted-header = {0:?} is not a valid HTTP header name")]
    Header(String),
    /// The address is taken or not ours.
    #[error("the dashboard cannot listen on {addr}: {source} (change [web] listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file cannot be read or written.
    #[error("the dashboard token file {}: {source}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound dashboard, ready to serve.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    app: Arc<routes::App>,
}

/// Lets the daemon end a backup or drill the dashboard started before it exits.
#[derive(Clone)]
pub struct DashboardHandle(Arc<routes::App>);

impl Dashboard {
    /// Reads (or on first start creates) the token and binds the address. Says in the log
    /// where the dashboard is and which file holds the token, never the token itself.
    pub async fn bind(settings: WebSettings) -> Result<Self, WebError> {
        let state_dir = settings.loaded.env.state_dir();
        let (token, created) = auth::load_or_create_token(&state_dir)?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: settings.listen,
            source,
        })?;
        let path = auth::token_path(&state_dir);
        if created {
            tracing::warn!(
                "dashboard token created in {}: open http://{addr}/?token=<the token> once \
                 (the browser keeps a session cookie), or send Authorization: Bearer <token>",
                path.display()
            );
        }
        tracing::info!(token_file = %path.display(), "dashboard on http://{addr}/");
        let app = Arc::new(routes::App::new(settings, token));
        Ok(Self { listener, app })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to stop what the dashboard started.
    pub fn handle(&self) -> DashboardHandle {
        DashboardHandle(self.app.clone())
    }

    /// Serves until the process ends.
    pub async fn serve(self) -> std::io::Result<()> {
        let router = routes::router(self.app);
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

impl DashboardHandle {
    /// Passes a stop on to a backup or drill the dashboard started (it starts what it
    /// stopped) and waits for it to end.
    pub async fn stop(&self) {
        self.0.jobs.stop().await;
    }
}
