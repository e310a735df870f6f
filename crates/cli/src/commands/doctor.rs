//! `kopi-docka doctor`

use std::fmt::Write as _;

use kopi_docka_core::doctor::{self, Check, DoctorReport, Status};
use kopi_docka_core::systemd::units::DEFAULT_UNIT_DIR;

use crate::cli::{GlobalArgs, JsonArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Checks everything a backup depends on; exits 1 when a check fails.
pub async fn run(
    global: &GlobalArgs,
    args: &JsonArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let report = match crate::settings::config(global) {
        Ok(loaded) => {
            doctor::run(
                &loaded,
                std::path::Path::new(DEFAULT_UNIT_DIR),
                jiff::Timestamp::now(),
            )
            .await
        }
        // A broken config is the one finding; nothing else can be checked without it.
        Err(error) => DoctorReport {
            checks: vec![Check {
                name: "config".into(),
                status: Status::Fail,
                message: format!("{error:#}"),
            }],
            ok: false,
        },
    };
    if args.json {
        printer.json(&report)?;
    } else {
        printer.out(&render(&report));
    }
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

fn render(report: &DoctorReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{mark}  {}: {}", c.name, c.message);
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let warned = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    let _ = writeln!(
        out,
        "\n{} checks: {failed} failed, {warned} warnings",
        report.checks.len()
    );
    out
}
