//! `kopi-docka doctor`

use std::fmt::Write as _;

use kopi_docka_core::doctor::{self, Check, DoctorReport, Status};
use kopi_docka_core::systemd::units::DEFAULT_UNIT_DIR;

use crate::cli::GlobalArgs;
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::Render;

/// Checks everything a backup depends on; exits 1 when a check fails.
pub async fn run(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
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
    printer.report(&report)?;
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

impl Render for DoctorReport {
    fn human(&self) -> String {
        render(self)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    fn check(name: &str, status: Status, message: &str) -> Check {
        Check {
            name: name.into(),
            status,
            message: message.into(),
        }
    }

    #[test]
    fn renders_a_failing_report() {
        assert_renders!(
            "doctor",
            &DoctorReport {
                checks: vec![
                    check("config", Status::Ok, "/etc/kopi-docka/config.toml"),
                    check(
                        "engine",
                        Status::Ok,
                        "Docker 27.3.1 at unix:///var/run/docker.sock"
                    ),
                    check(
                        "staging space",
                        Status::Warn,
                        "812.0 MiB free in /var/cache/kopi-docka/staging (less than 1 GiB)"
                    ),
                    check(
                        "repository",
                        Status::Fail,
                        "no repository at /srv/backup/kopi-docka; create it with `kopi-docka admin repo init`"
                    ),
                ],
                ok: false,
            }
        );
    }
}
