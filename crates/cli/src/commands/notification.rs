//! `kopi-docka admin notification test`

use kopi_docka_core::notify::{self, Delivery};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::Render;

/// One delivery per target (JSON: the list itself).
#[derive(Serialize)]
#[serde(transparent)]
struct Deliveries(Vec<Delivery>);

/// Sends a test message to every target, whatever the on-* settings say.
pub async fn test(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let config = &loaded.config.notifications;
    if config.targets.is_empty() {
        return Err(super::UsageError(
            "no [[notifications.targets]] in the config; docs/operations.md shows how to add one"
                .into(),
        )
        .into());
    }
    // The name backup notifications use: the configured one, or this machine's.
    let host = loaded
        .config
        .repository
        .hostname
        .clone()
        .unwrap_or_else(kopi_docka_core::repo::this_hostname);
    let message = notify::test_message(&host);
    let deliveries = Deliveries(notify::send_all(config, &message).await);
    printer.report(&deliveries)?;
    Ok(if deliveries.0.iter().all(|d| d.error.is_none()) {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

impl Render for Deliveries {
    fn human(&self) -> String {
        self.0
            .iter()
            .map(|d| match &d.error {
                None => format!("sent    {}\n", d.target),
                Some(error) => format!("FAILED  {error}\n"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    #[test]
    fn renders_deliveries() {
        assert_renders!(
            "notification_test",
            &Deliveries(vec![
                Delivery {
                    target: "ntfys://ntfy.sh/kopi-docka-*****".into(),
                    error: None,
                },
                Delivery {
                    target: "mailtos://backup@example.org".into(),
                    error: Some(
                        "mailtos://backup@example.org: SMTP 535 authentication failed".into()
                    ),
                },
            ])
        );
    }
}
