//! `kopi-docka admin notification test`

use kopi_docka_core::notify::{self, Level, Message};

use crate::cli::{GlobalArgs, JsonArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Sends a test message to every target, whatever the on-* settings say.
pub async fn test(
    global: &GlobalArgs,
    args: &JsonArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let config = &loaded.config.notifications;
    if config.targets.is_empty() {
        return Err(super::UsageError(
            "no [[notifications.targets]] in the config; docs/operations.md shows how to add one"
                .into(),
        )
        .into());
    }
    let host = kopi_docka_core::repo::this_hostname();
    let message = Message {
        title: format!("kopi-docka on {host}: test notification"),
        body: "If you read this, kopi-docka can reach you here.".into(),
        level: Level::Success,
    };
    let deliveries = notify::send_all(config, &message).await;
    if args.json {
        printer.json(&deliveries)?;
    } else {
        for d in &deliveries {
            match &d.error {
                None => printer.line(&format!("sent    {}", d.target)),
                Some(error) => printer.line(&format!("FAILED  {error}")),
            }
        }
    }
    Ok(if deliveries.iter().all(|d| d.error.is_none()) {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}
