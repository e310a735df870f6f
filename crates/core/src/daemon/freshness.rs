//! Missed backups, found by the daemon itself: a unit whose last success is older than its
//! allowed age gets one alert per overdue period, even when backups stopped running entirely.

use super::DaemonSettings;
use crate::docker::Engine;
use crate::unit;
use crate::{history, monitor, notify};

/// Alerts (once per overdue period) about units whose last success is too old.
pub(super) async fn check(settings: &DaemonSettings) {
    let config = &settings.loaded.config;
    let state_dir = settings.loaded.env.state_dir();
    let units = units(settings).await;
    let Some((message, overdue)) =
        monitor::overdue_alert(&settings.loaded, &units, jiff::Timestamp::now())
    else {
        return;
    };
    for o in &overdue {
        tracing::error!(unit = %o.unit, max_age_hours = o.max_age_hours, "backup overdue");
    }
    if notify::wanted(&config.notifications, message.level) {
        for delivery in notify::send_all(&config.notifications, &message).await {
            if let Some(error) = delivery.error {
                tracing::warn!("overdue alert not delivered: {error}");
            }
        }
    }
    if let Err(error) = monitor::mark_alerted(&state_dir, &overdue) {
        tracing::warn!(%error, "cannot remember the overdue alert; it may repeat");
    }
}

/// The units the daemon is responsible for: its `--unit`/`[daemon] units`, else every unit on
/// the engine, else (engine down) every unit the run records know.
async fn units(settings: &DaemonSettings) -> Vec<String> {
    if !settings.units.is_empty() {
        return settings.units.clone();
    }
    let loaded = &settings.loaded;
    if let Ok(host) = loaded.engine_target()
        && let Ok(engine) = Engine::connect(host).await
    {
        match unit::discover_configured(&engine, loaded).await {
            Ok(units) => return units.iter().map(|u| u.name.to_string()).collect(),
            Err(error) => tracing::warn!("freshness check: {error}"),
        }
    }
    let mut names: Vec<String> = history::load_local_for(loaded)
        .records
        .iter()
        .flat_map(|r| r.units.iter().map(|u| u.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}
