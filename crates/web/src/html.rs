//! Server-rendered pages: plain HTML with inline CSS, one small inline script on the live
//! view, no external assets (the host may be offline).

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::data::{Fleet, Health, HistoryPage, Overview, UnitPage, UnitRun};
use crate::jobs::{Job, JobKind, JobState};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header b{margin-right:1em}
main{padding:1em 1.2em;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff;margin:.6em 0 1.4em}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3;font-weight:600}
.ok{background:#d8f3dc;color:#14532d}.warn{background:#fff3c4;color:#713f12}
.fail{background:#fddede;color:#7f1d1d}
.badge{display:inline-block;padding:.1em .55em;border-radius:.8em;font-weight:600}
pre,code{background:#eef0f3;padding:.15em .35em;border-radius:3px}
pre{padding:.6em;white-space:pre-wrap;max-height:28em;overflow:auto}
button,.button{background:#2456c7;color:#fff;border:0;padding:.45em 1em;border-radius:4px;
font-size:1em;cursor:pointer;text-decoration:none;display:inline-block}
.danger{background:#b42318}.muted{color:#667085}
form.inline{display:inline}
";

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment (unit names are safe names, but a URL is a URL).
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{t} · kopi-docka</title><style>{STYLE}</style></head><body>\
         <header><b>kopi-docka</b><a href=\"/\">Overview</a><a href=\"/history\">History</a>\
         <a href=\"/fleet\">Fleet</a><a href=\"/live\">Live</a></header><main>{body}</main>\
         </body></html>",
        t = esc(title)
    )
}

/// A time in the host's zone, for people.
pub fn local(t: Timestamp) -> String {
    t.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn age(hours: f64) -> String {
    if hours < 1.0 {
        format!("{:.0} min ago", hours * 60.0)
    } else if hours < 48.0 {
        format!("{hours:.1} h ago")
    } else {
        format!("{:.1} days ago", hours / 24.0)
    }
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "–".to_owned(), |s| format!("{s:.1} s"))
}

fn badge(health: Health) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", health.as_str())
}

/// The overview page.
pub fn overview(o: &Overview, running: Option<&Job>) -> String {
    let mut b = format!("<h1>Units on {}</h1>", esc(&o.host));
    let _ = write!(
        b,
        "<p class=muted>Engine: {}. Shown {}.</p>",
        esc(o.engine.as_deref().unwrap_or("not reachable")),
        local(o.now)
    );
    if let Some(error) = &o.engine_error {
        let _ = write!(
            b,
            "<p class=fail>The engine did not answer ({}); units from the run records.</p>",
            esc(error)
        );
    }
    if let Some(job) = running {
        let _ = write!(
            b,
            "<p class=warn>Running now: {} of {} — <a href=\"/live?job={}\">live view</a></p>",
            job.kind.as_str(),
            esc(&job.unit),
            job.id
        );
    }
    b.push_str(
        "<table><tr><th>Status</th><th>Unit</th><th>Kind</th><th>Last good backup</th>\
         <th>Age / threshold</th><th>Last downtime</th><th>Coverage gaps</th><th>Last drill</th>\
         <th>Why</th></tr>",
    );
    for u in &o.units {
        let last = u.last_success.map_or_else(|| "never".to_owned(), local);
        let age_text = u.age_hours.map_or_else(|| "–".to_owned(), age);
        let drill = u.last_drill.as_ref().map_or_else(
            || "none".to_owned(),
            |d| {
                format!(
                    "{} {}",
                    if d.passed { "passed" } else { "FAILED" },
                    local(d.at)
                )
            },
        );
        let _ = write!(
            b,
            "<tr class=\"{h}\"><td>{badge}</td><td><a href=\"/units/{link}\">{name}</a></td>\
             <td>{kind}</td><td>{last}</td><td>{age_text} / {max} h</td><td>{down}</td>\
             <td>{gaps}</td><td>{drill}</td><td>{why}</td></tr>",
            h = u.health.as_str(),
            badge = badge(u.health),
            link = url(&u.name),
            name = esc(&u.name),
            kind = esc(u.kind.as_deref().unwrap_or("?")),
            max = u.max_age_hours,
            down = seconds(u.last_downtime_seconds),
            gaps = u.coverage_gaps,
            drill = esc(&drill),
            why = esc(&u.reasons.join("; ")),
        );
    }
    b.push_str("</table>");
    if o.units.is_empty() {
        b.push_str("<p>No units: nothing on the engine, nothing in the run records.</p>");
    }
    page("Overview", &b)
}

/// A unit's page.
pub fn unit(p: &UnitPage) -> String {
    let r = &p.row;
    let name = esc(&r.name);
    let link = url(&r.name);
    let mut b = format!(
        "<h1>{name} {}</h1><p>{}. Last good backup: {}. Threshold {} h.</p>",
        badge(r.health),
        esc(r.kind.as_deref().unwrap_or("unit")),
        r.last_success.map_or_else(|| "never".to_owned(), local),
        r.max_age_hours
    );
    if !r.reasons.is_empty() {
        let _ = write!(
            b,
            "<p class={}>{}</p>",
            r.health.as_str(),
            esc(&r.reasons.join("; "))
        );
    }
    let _ = write!(
        b,
        "<p><a class=button href=\"/units/{link}/backup\">Back up now</a> \
         <a class=button href=\"/units/{link}/drill\">Run a drill</a></p>"
    );
    if let Some(u) = &p.unit {
        b.push_str("<h2>Containers</h2><table><tr><th>Container</th><th>Image</th><th>State</th><th>Policy</th></tr>");
        for c in &u.containers {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.image),
                esc(&word(&c.state)),
                esc(&word(&c.policy))
            );
        }
        b.push_str("</table><h2>Mounts and coverage</h2><table><tr><th>Kind</th><th>What</th><th>Verdict</th><th>Detail</th></tr>");
        for e in &u.coverage.entries {
            let verdict = word(&e.verdict.status);
            let class = match e.verdict.status {
                kopi_docka_core::unit::CoverageStatus::BackedUp => "ok",
                kopi_docka_core::unit::CoverageStatus::Skipped => "",
                kopi_docka_core::unit::CoverageStatus::NotProtected => "fail",
            };
            let _ = write!(
                b,
                "<tr class=\"{class}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                e.kind,
                esc(&e.identifier),
                esc(&verdict.replace('_', " ")),
                esc(e.detail.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</table>");
    } else {
        b.push_str("<p class=warn>Not on the engine now (or the engine did not answer).</p>");
    }
    b.push_str("<h2>Downtime per backup</h2>");
    b.push_str(&chart(&p.runs, |r| r.downtime_seconds.unwrap_or(0.0), "s"));
    b.push_str("<h2>Data added per backup</h2>");
    #[allow(clippy::cast_precision_loss, reason = "a chart")]
    b.push_str(&chart(&p.runs, |r| r.bytes_added as f64 / 1024.0, "KiB"));
    hooks(&mut b, p);
    restore_points(&mut b, p, &link);
    page(&r.name, &b)
}

fn hooks(b: &mut String, p: &UnitPage) {
    b.push_str("<h2>Hooks</h2>");
    if p.hooks.is_empty() {
        b.push_str("<p class=muted>No hooks run for this unit.</p>");
        return;
    }
    b.push_str("<table><tr><th>Point</th><th>From</th><th>Runs on</th><th>Command</th></tr>");
    for h in &p.hooks {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            h.point,
            esc(h.from),
            esc(&h.runs),
            esc(&h.argv.join(" "))
        );
    }
    b.push_str("</table>");
}

fn restore_points(b: &mut String, p: &UnitPage, link: &str) {
    b.push_str("<h2>Restore points</h2>");
    if let Some(error) = &p.points_error {
        let _ = write!(b, "<p class=fail>The repository: {}</p>", esc(error));
    }
    if let (Some(cmd), Some(id)) = (&p.restore_command, &p.chosen_point) {
        let _ = write!(
            b,
            "<p>Restore point {} on the command line:</p><pre id=restore-command>{}</pre>",
            esc(id),
            esc(cmd)
        );
    }
    b.push_str(
        "<table><tr><th>Point</th><th>Time</th><th>Completeness</th><th>Data</th><th></th></tr>",
    );
    for point in &p.points {
        let id = point.backup_id.to_string();
        let _ = write!(
            b,
            "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{} KiB</td>\
             <td><a href=\"/units/{link}?point={}\">restore command</a></td></tr>",
            if point.complete { "ok" } else { "warn" },
            esc(&id),
            local(point.time),
            esc(&word(&point.status)),
            point.data_size() / 1024,
            url(&id),
        );
    }
    b.push_str("</table>");
    if p.points.is_empty() && p.points_error.is_none() {
        b.push_str("<p>No restore points of this host yet.</p>");
    }
}

/// An enum's serialised name, for display.
fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other
            .get("policy")
            .or_else(|| other.get("mode"))
            .and_then(|v| v.as_str())
            .map_or_else(|| other.to_string(), str::to_owned),
        Err(_) => "?".to_owned(),
    }
}

/// A bar chart of the runs, oldest left, as inline SVG.
#[allow(clippy::cast_precision_loss, reason = "pixels")]
fn chart(runs: &[UnitRun], value: impl Fn(&UnitRun) -> f64, unit: &str) -> String {
    let runs = &runs[runs.len().saturating_sub(60)..];
    if runs.is_empty() {
        return "<p class=muted>No runs yet.</p>".to_owned();
    }
    let max = runs.iter().map(&value).fold(0.0_f64, f64::max).max(1e-9);
    let (w, h) = (600.0, 120.0);
    let bar = w / runs.len() as f64;
    let mut svg = format!(
        "<svg width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=img>",
        h + 16.0,
        h + 16.0
    );
    for (i, run) in runs.iter().enumerate() {
        let v = value(run);
        let bh = (v / max * h).max(1.0);
        let colour = if run.status == "success" {
            "#2456c7"
        } else {
            "#b42318"
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\">\
             <title>{}: {v:.1} {unit}</title></rect>",
            i as f64 * bar + 1.0,
            h - bh,
            (bar - 2.0).max(1.0),
            esc(&local(run.started_at)),
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">max {max:.1} {unit}</text></svg>",
        h + 13.0
    );
    svg
}

/// The history page.
pub fn history(p: &HistoryPage) -> String {
    let f = &p.filter;
    let mut b = format!(
        "<h1>Run history</h1><form method=get action=\"/history\">\
         Unit <input name=unit value=\"{}\"> Since <input name=since value=\"{}\" \
         placeholder=\"7d or 2026-11-01\"> <label><input type=checkbox name=failed value=1{}> \
         only failed</label> Newest <input name=limit size=4 value=\"{}\"> \
         <button>Filter</button></form>",
        esc(f.unit.as_deref().unwrap_or("")),
        esc(f.since.as_deref().unwrap_or("")),
        if f.failed { " checked" } else { "" },
        esc(f.limit.as_deref().unwrap_or("")),
    );
    if let Some(error) = &p.filter_error {
        let _ = write!(b, "<p class=fail>{}</p>", esc(error));
    }
    b.push_str("<table><tr><th>Started</th><th>Run</th><th>Result</th><th>Units</th></tr>");
    for run in &p.runs {
        let units: Vec<String> = run
            .units
            .iter()
            .map(|u| {
                format!(
                    "<a href=\"/units/{}\">{}</a>: {} ({} down)",
                    url(&u.name),
                    esc(&u.name),
                    esc(u.status.as_str()),
                    seconds(u.downtime_seconds)
                )
            })
            .collect();
        let failed = run.failed();
        let _ = write!(
            b,
            "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            if failed { "fail" } else { "ok" },
            local(run.started_at),
            esc(&run.run_id),
            if failed { "failed" } else { "ok" },
            units.join("<br>")
        );
    }
    b.push_str("</table>");
    if p.runs.is_empty() {
        b.push_str("<p>No runs match.</p>");
    }
    page("History", &b)
}

/// The fleet page.
pub fn fleet(f: Result<&Fleet, &str>) -> String {
    let mut b = "<h1>Fleet</h1><p class=muted>Every host whose run records are in the \
                 repository; read-only: actions are for this host's units only.</p>"
        .to_owned();
    match f {
        Err(error) => {
            let _ = write!(b, "<p class=fail>The repository: {}</p>", esc(error));
        }
        Ok(f) => {
            for host in &f.hosts {
                let this = if host.host == f.this_host {
                    " (this host)"
                } else {
                    ""
                };
                let _ = write!(
                    b,
                    "<h2>{} {}{this}</h2><p>Last run: {}</p><table><tr><th>Status</th>\
                     <th>Unit</th><th>Last good backup</th><th>Age / threshold</th>\
                     <th>Last result</th></tr>",
                    esc(&host.host),
                    badge(host.health),
                    host.last_run.map_or_else(|| "never".to_owned(), local)
                );
                for u in &host.units {
                    let _ = write!(
                        b,
                        "<tr class=\"{h}\"><td>{badge}</td><td>{}</td><td>{}</td>\
                         <td>{} / {} h</td><td>{}</td></tr>",
                        esc(&u.name),
                        u.last_success.map_or_else(|| "never".to_owned(), local),
                        u.age_hours.map_or_else(|| "–".to_owned(), age),
                        u.max_age_hours,
                        esc(u.last_status.as_deref().unwrap_or("?")),
                        h = u.health.as_str(),
                        badge = badge(u.health),
                    );
                }
                b.push_str("</table>");
            }
            if f.hosts.is_empty() {
                b.push_str("<p>No run records in the repository yet.</p>");
            }
        }
    }
    page("Fleet", &b)
}

/// The confirmation before a backup or drill.
pub fn confirm(kind: JobKind, unit: &str, csrf: &str) -> String {
    let (what, detail) = match kind {
        JobKind::Backup => (
            "Back up",
            "Its containers are stopped briefly for the cold pass and started again.",
        ),
        JobKind::Drill => (
            "Drill a restore of",
            "The newest complete point is restored into a sandbox, verified, started and \
             removed; production is not touched.",
        ),
    };
    let b = format!(
        "<h1>{what} {u} now?</h1><p>{detail}</p>\
         <form method=post action=\"/units/{link}/{k}\"><input type=hidden name=csrf \
         value=\"{csrf}\"><button id=confirm>Yes, {lower} {u} now</button> \
         <a href=\"/units/{link}\">Cancel</a></form>",
        u = esc(unit),
        link = url(unit),
        k = kind.as_str(),
        csrf = esc(csrf),
        lower = what.to_lowercase(),
    );
    page(what, &b)
}

/// A refusal or error, for people.
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

/// The live view of a job: the page polls `/api/jobs/{id}` and updates itself.
pub fn live(job: Option<&Job>) -> String {
    let Some(job) = job else {
        return page(
            "Live",
            "<h1>Live</h1><p>Nothing started from the dashboard is running or recent.</p>",
        );
    };
    let state = state_word(job.state);
    let b = format!(
        "<h1>{kind} of <a href=\"/units/{link}\">{u}</a></h1>\
         <p>Job {id}, started {started}: <b id=state>{state}</b></p>\
         <pre id=log>{log}</pre>\
         <noscript><meta http-equiv=refresh content=2></noscript>\
         <script>\
         (function(){{var id={id};function tick(){{fetch('/api/jobs/'+id,{{credentials:'same-origin'}})\
         .then(function(r){{return r.json()}}).then(function(j){{\
         document.getElementById('log').textContent=j.lines.join('\\n');\
         var s=j.state==='running'?'running':(j.state==='succeeded'?'finished: succeeded':'finished: FAILED (exit code '+j.exit_code+')');\
         document.getElementById('state').textContent=s;\
         if(j.state==='running'){{setTimeout(tick,700)}}}}).catch(function(){{setTimeout(tick,2000)}})}}\
         tick()}})();</script>",
        kind = match job.kind {
            JobKind::Backup => "Backup",
            JobKind::Drill => "Drill",
        },
        link = url(&job.unit),
        u = esc(&job.unit),
        id = job.id,
        started = local(job.started_at),
        log = esc(&job.lines.join("\n")),
    );
    page("Live", &b)
}

fn state_word(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Succeeded => "finished: succeeded",
        JobState::Failed => "finished: FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_urls_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url("a b/c"), "a%20b%2Fc");
        assert_eq!(url("web-1.x_y"), "web-1.x_y");
    }
}
