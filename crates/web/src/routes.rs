//! The routes: pages, the JSON API under `/api`, `/metrics`; all behind `auth::require`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use jiff::Timestamp;
use kopi_docka_core::{history, monitor};
use serde::Deserialize;

use crate::auth::{self, Credential};
use crate::jobs::{JobKind, Jobs, Refused};
use crate::{WebSettings, data, html};

/// What every handler shares.
pub struct App {
    /// The settings.
    pub settings: WebSettings,
    /// The login token.
    pub token: String,
    /// The session cookie's value (new each start: a restart logs browsers out).
    pub session: String,
    /// The anti-CSRF token embedded in forms (new each start).
    pub csrf: String,
    /// Backups and drills started here.
    pub jobs: Arc<Jobs>,
}

impl App {
    /// Fresh session and CSRF secrets around `token`.
    pub fn new(settings: WebSettings, token: String) -> Self {
        // The kernel's random source failing is not something to serve on: fall back to
        // secrets derived from the token would be guessable, so use the token itself, which
        // is as secret as anything here (the cookie is HttpOnly, the form field same-origin).
        let secret = |bytes| auth::random_hex(bytes).unwrap_or_else(|_| token.clone());
        Self {
            session: secret(32),
            csrf: secret(32),
            settings,
            token,
            jobs: Arc::new(Jobs::default()),
        }
    }
}

/// Every route, behind the authentication middleware.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/units/{name}", get(unit_page))
        .route(
            "/units/{name}/{action}",
            get(confirm_page).post(action_form),
        )
        .route("/history", get(history_page))
        .route("/fleet", get(fleet_page))
        .route("/live", get(live_page))
        .route("/api/overview", get(api_overview))
        .route("/api/units/{name}", get(api_unit))
        .route("/api/units/{name}/{action}", post(api_action))
        .route("/api/history", get(api_history))
        .route("/api/fleet", get(api_fleet))
        .route("/api/jobs", get(api_jobs))
        .route("/api/jobs/{id}", get(api_job))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), auth::require))
        .with_state(app)
}

type Shared = State<Arc<App>>;

async fn overview_page(State(app): Shared) -> Html<String> {
    let overview = data::overview(&app.settings.loaded, Timestamp::now()).await;
    Html(html::overview(&overview, app.jobs.running().as_ref()))
}

async fn api_overview(State(app): Shared) -> Json<data::Overview> {
    Json(data::overview(&app.settings.loaded, Timestamp::now()).await)
}

#[derive(Deserialize)]
struct PointQuery {
    point: Option<String>,
}

async fn unit_page(
    State(app): Shared,
    Path(name): Path<String>,
    Query(q): Query<PointQuery>,
) -> Response {
    match data::unit_page(
        &app.settings.loaded,
        &name,
        q.point.as_deref(),
        Timestamp::now(),
    )
    .await
    {
        Some(page) => Html(html::unit(&page)).into_response(),
        None => unknown_unit(&name),
    }
}

async fn api_unit(
    State(app): Shared,
    Path(name): Path<String>,
    Query(q): Query<PointQuery>,
) -> Response {
    match data::unit_page(
        &app.settings.loaded,
        &name,
        q.point.as_deref(),
        Timestamp::now(),
    )
    .await
    {
        Some(page) => Json(page).into_response(),
        None => error_json(StatusCode::NOT_FOUND, &format!("no unit named {name:?}")),
    }
}

fn unknown_unit(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(html::message(
            "No such unit",
            &format!("Neither the engine nor the run records know a unit named {name:?}."),
        )),
    )
        .into_response()
}

async fn history_page(
    State(app): Shared,
    Query(filter): Query<data::HistoryFilter>,
) -> Html<String> {
    Html(html::history(&data::history_page(
        &app.settings.loaded,
        filter,
    )))
}

async fn api_history(
    State(app): Shared,
    Query(filter): Query<data::HistoryFilter>,
) -> Json<data::HistoryPage> {
    Json(data::history_page(&app.settings.loaded, filter))
}

async fn fleet_page(State(app): Shared) -> Html<String> {
    let fleet = data::fleet(&app.settings.loaded, Timestamp::now()).await;
    Html(html::fleet(fleet.as_ref().map_err(String::as_str)))
}

async fn api_fleet(State(app): Shared) -> Response {
    match data::fleet(&app.settings.loaded, Timestamp::now()).await {
        Ok(fleet) => Json(fleet).into_response(),
        Err(error) => error_json(StatusCode::BAD_GATEWAY, &error),
    }
}

#[derive(Deserialize)]
struct JobQuery {
    job: Option<u64>,
}

async fn live_page(State(app): Shared, Query(q): Query<JobQuery>) -> Html<String> {
    let job = match q.job {
        Some(id) => app.jobs.get(id),
        None => app.jobs.list().into_iter().next(),
    };
    Html(html::live(job.as_ref()))
}

async fn api_jobs(State(app): Shared) -> Json<Vec<crate::jobs::Job>> {
    Json(app.jobs.list())
}

async fn api_job(State(app): Shared, Path(id): Path<u64>) -> Response {
    match app.jobs.get(id) {
        Some(job) => Json(job).into_response(),
        None => error_json(StatusCode::NOT_FOUND, &format!("no job {id}")),
    }
}

async fn confirm_page(
    State(app): Shared,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    match JobKind::parse(&action) {
        Some(kind) => Html(html::confirm(kind, &name, &app.csrf)).into_response(),
        None => not_found().await,
    }
}

async fn action_form(
    State(app): Shared,
    Extension(credential): Extension<Credential>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(kind) = JobKind::parse(&action) else {
        return not_found().await;
    };
    if !auth::csrf_ok(&app, credential, form.get("csrf").map(String::as_str)) {
        return (StatusCode::FORBIDDEN, "missing or wrong anti-CSRF token\n").into_response();
    }
    match app.jobs.start(&app.settings, kind, &name) {
        Ok(job) => Redirect::to(&format!("/live?job={}", job.id)).into_response(),
        Err(refused) => (
            StatusCode::CONFLICT,
            Html(html::message("Not started", &refused.to_string())),
        )
            .into_response(),
    }
}

async fn api_action(
    State(app): Shared,
    Extension(credential): Extension<Credential>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let Some(kind) = JobKind::parse(&action) else {
        return error_json(StatusCode::NOT_FOUND, "actions: backup, drill");
    };
    let sent = headers.get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !auth::csrf_ok(&app, credential, sent) {
        return error_json(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    match app.jobs.start(&app.settings, kind, &name) {
        Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
        Err(refused @ (Refused::Busy(_) | Refused::RunLock)) => {
            error_json(StatusCode::CONFLICT, &refused.to_string())
        }
        Err(refused @ Refused::Spawn(_)) => {
            error_json(StatusCode::INTERNAL_SERVER_ERROR, &refused.to_string())
        }
    }
}

/// The Prometheus exposition: the textfile's renderer over the same local records.
async fn metrics(State(app): Shared) -> Response {
    let records = history::load_local_for(&app.settings.loaded).records;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        monitor::textfile(&records),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(html::message("Not found", "No such page.")),
    )
        .into_response()
}

fn error_json(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
