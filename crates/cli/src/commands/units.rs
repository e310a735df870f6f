//! `kopi-docka units`

use std::fmt::Write as _;

use kopi_docka_core::docker::{Engine, Identity};
use kopi_docka_core::unit::{self, Unit, UnitKind};

use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::{Render, gap_line};

/// The units on one engine.
#[derive(Serialize)]
struct UnitsReport {
    /// The engine's endpoint.
    engine: String,
    /// Which engine answers there: Docker or Podman, version, rootless.
    engine_identity: Identity,
    units: Vec<Unit>,
    /// Config names that match no unit (`[units."x"]`, `[daemon] units`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Discovers the units on the engine and prints them.
pub async fn run(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let engine = Engine::connect(loaded.engine_target()?).await?;
    let units = unit::discover_configured(&engine, &loaded).await?;
    let warnings = unit::unmatched_config_names(&loaded.config, &units);
    // A label kopi-docka cannot follow is a configuration error, never silently ignored.
    let label_errors = units.iter().any(|u| !u.policy_errors.is_empty());
    printer.report(&UnitsReport {
        engine: engine.endpoint().to_string(),
        engine_identity: engine.identity().clone(),
        units,
        warnings,
    })?;
    Ok(if label_errors {
        ExitCode::Usage
    } else {
        ExitCode::Ok
    })
}

impl Render for UnitsReport {
    fn human(&self) -> String {
        let mut out = format!("engine: {} at {}\n\n", self.engine_identity, self.engine);
        out.push_str(&render(&self.units));
        for warning in &self.warnings {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }
}

fn render(units: &[Unit]) -> String {
    let mut out = String::new();
    for unit in units {
        render_unit(&mut out, unit);
        out.push('\n');
    }
    let stacks = units.iter().filter(|u| u.kind == UnitKind::Stack).count();
    let gaps = units.iter().filter(|u| u.coverage.has_gaps).count();
    let _ = writeln!(
        out,
        "{} ({}, {} standalone); {} with coverage gaps",
        plural(units.len(), "unit"),
        plural(stacks, "stack"),
        units.len() - stacks,
        plural(gaps, "unit"),
    );
    out
}

fn render_unit(out: &mut String, unit: &Unit) {
    // Writing into a String cannot fail; the `fmt::Result`s below are ignored for that reason.
    let _ = writeln!(out, "{} {}", unit.kind, unit.name);
    let containers: Vec<String> = unit
        .containers
        .iter()
        .map(|c| {
            let mut state = format!("{:?}", c.state).to_lowercase();
            if let Some(health) = c.health {
                let _ = write!(state, ", {health:?}");
                state = state.to_lowercase();
            }
            if !c.policy.stops() {
                let _ = write!(state, "; policy {}", c.policy.describe());
            }
            if let Some(seconds) = c.stop_timeout {
                let _ = write!(state, "; stop-timeout {seconds}s");
            }
            format!("{} ({state})", c.name)
        })
        .collect();
    field(out, "containers", &containers);
    let mut services: Vec<String> = Vec::new();
    for service in unit.containers.iter().filter_map(|c| c.systemd.as_ref()) {
        let line = match &service.user {
            Some(user) => format!("{} (user {user})", service.unit),
            None => service.unit.clone(),
        };
        if !services.contains(&line) {
            services.push(line);
        }
    }
    // Stopped and started through the unit while it runs (docs/podman.md).
    field(out, "systemd unit", &services);
    for error in &unit.policy_errors {
        let _ = writeln!(out, "  error:         {error}");
    }
    if let Some(project) = &unit.project {
        if let Some(dir) = &project.working_dir {
            field(out, "project dir", &[dir.display().to_string()]);
        }
        let files = |fs: &[unit::ProjectFile]| -> Vec<String> {
            fs.iter().map(|f| f.path.display().to_string()).collect()
        };
        field(out, "compose files", &files(&project.compose_files));
        field(out, "env files", &files(&project.env_files));
    }
    let fs = |f: Option<&kopi_docka_core::fs_snapshot::FsSupport>| {
        f.map(|f| format!(" [{f}]")).unwrap_or_default()
    };
    let except = |globs: &[String]| {
        if globs.is_empty() {
            String::new()
        } else {
            format!(" (except {})", globs.join(" "))
        }
    };
    let volumes: Vec<String> = unit
        .volumes
        .iter()
        .map(|v| {
            format!(
                "{}{}{}",
                v.name,
                fs(v.filesystem.as_ref()),
                except(&v.exclude)
            )
        })
        .collect();
    field(out, "volumes", &volumes);
    let binds: Vec<String> = unit
        .binds
        .iter()
        .map(|b| {
            let dests: Vec<String> = b
                .destinations
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let ro = if b.read_only { " (ro)" } else { "" };
            format!(
                "{} -> {}{ro}{}{}",
                b.source.display(),
                dests.join(", "),
                fs(b.filesystem.as_ref()),
                except(&b.exclude)
            )
        })
        .collect();
    field(out, "binds", &binds);
    field(out, "networks", &unit.networks);
    let s = unit.coverage.summary;
    let _ = writeln!(
        out,
        "  {:<14} {} backed up, {} skipped, {} not protected",
        "coverage:", s.backed_up, s.skipped, s.not_protected
    );
    for line in coverage_gaps(unit) {
        let _ = writeln!(out, "    {line}");
    }
}

fn field(out: &mut String, name: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {:<14} {}", format!("{name}:"), values.join(", "));
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One line per coverage entry that is not backed up: status, kind, identifier and why.
pub fn coverage_gaps(unit: &Unit) -> impl Iterator<Item = String> + '_ {
    unit.coverage
        .entries
        .iter()
        .filter(|e| !e.verdict.is_backed_up())
        .map(gap_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{assert_renders, fixtures};
    use kopi_docka_core::docker::EngineKind;

    #[test]
    fn renders_units() {
        assert_renders!(
            "units",
            &UnitsReport {
                engine: "unix:///var/run/docker.sock".into(),
                engine_identity: Identity {
                    kind: EngineKind::Docker,
                    version: "27.3.1".into(),
                    rootless: false,
                },
                units: fixtures::units(),
                warnings: Vec::new(),
            }
        );
    }

    #[test]
    fn renders_no_units() {
        assert_renders!(
            "units_none",
            &UnitsReport {
                engine: "unix:///run/user/1001/podman/podman.sock".into(),
                engine_identity: Identity {
                    kind: EngineKind::Podman,
                    version: "4.3.1".into(),
                    rootless: true,
                },
                units: Vec::new(),
                warnings: Vec::new(),
            }
        );
    }

    #[test]
    fn renders_config_names_without_a_unit() {
        assert_renders!(
            "units_unmatched",
            &UnitsReport {
                engine: "unix:///var/run/docker.sock".into(),
                engine_identity: Identity {
                    kind: EngineKind::Docker,
                    version: "27.3.1".into(),
                    rootless: false,
                },
                units: Vec::new(),
                warnings: vec![
                    "[units.\"wbe\"] names no discovered unit: its settings apply to nothing"
                        .into()
                ],
            }
        );
    }
}
