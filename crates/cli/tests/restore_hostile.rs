//! Issue 16, points 7 and 8: a restore cannot be turned against the host. A second local user
//! plants symlinks where a restore running as root writes; crafted repositories (written with
//! restic itself) carry unsafe tags, a symlink that later parts would be written through, a
//! recipe that writes outside its project directory, a privileged service, and a bind target
//! under a host-internal path. Each is refused with a clear message, and a canary directory
//! standing in for /etc proves nothing was written outside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Env, IDLE, IMAGE, docker};

/// A directory standing in for /etc: one file, which must stay the only thing in it.
fn canary(env: &Env) -> PathBuf {
    let dir = env.path("etc-canary");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("passwd"), "canary").unwrap();
    dir
}

fn assert_untouched(canary: &Path) {
    let names: Vec<String> = std::fs::read_dir(canary)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["passwd"],
        "something was written into {}",
        canary.display()
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("passwd")).unwrap(),
        "canary"
    );
}

/// A local user for the test, removed on drop.
struct User {
    name: String,
    uid: u32,
}

impl User {
    fn add(prefix: &str) -> Self {
        // useradd names are at most 32 characters: kdtest-xxxxxxxx fits.
        let name = prefix.to_owned();
        support::run(Command::new("useradd").args(["-M", "-N", "-s", "/usr/sbin/nologin", &name]));
        let uid =
            String::from_utf8_lossy(&support::run(Command::new("id").args(["-u", &name])).stdout)
                .trim()
                .parse()
                .unwrap();
        Self { name, uid }
    }

    /// Gives `path` (not followed if a symlink) to this user.
    fn own(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), None).unwrap();
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let out = Command::new("userdel").arg(&self.name).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: cannot remove user {}", self.name);
        }
    }
}

/// Issue 16.7: restoring as root into a directory another user owns. The user replaces the
/// bind's parent directory with a symlink to "/etc" (the canary): the restore refuses to follow
/// it and writes nothing there. With the user's symlink at the bind itself, the restore swaps
/// the link aside (never following it). Without tricks it restores normally, staging in a
/// private 0700 directory the user cannot enter.
#[test]
fn a_symlink_another_user_plants_cannot_redirect_a_restore() {
    if !support::docker_tests_enabled("a_symlink_another_user_plants_cannot_redirect_a_restore") {
        return;
    }
    let env = Env::builder().init().build();
    let user = User::add(&env.prefix);
    let etc = canary(&env);
    let home = env.path("home");
    let app = home.join("app");
    let data = app.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("marker"), "v1").unwrap();
    for p in [&home, &app, &data, &data.join("marker")] {
        user.own(p);
    }
    let name = format!("{}-solo", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/data", data.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    env.cmd(&["backup", "--unit", &name]).assert().success();
    std::fs::write(data.join("marker"), "v2").unwrap();
    let restore = [
        "restore",
        "--unit",
        &name,
        "--only",
        "binds",
        "--no-start",
        "--yes",
    ];

    // 1. The user's app directory becomes a symlink to "/etc".
    let real = home.join("app-real");
    std::fs::rename(&app, &real).unwrap();
    std::os::unix::fs::symlink(&etc, &app).unwrap();
    user.own(&app);
    let out = env.cmd(&restore).assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("is a symlink owned by uid {}", user.uid)),
        "{stderr}"
    );
    assert_untouched(&etc);
    assert_eq!(
        std::fs::read_to_string(real.join("data/marker")).unwrap(),
        "v2"
    );
    std::fs::remove_file(&app).unwrap();
    std::fs::rename(&real, &app).unwrap();

    // 2. The bind itself becomes the user's symlink to "/etc": swapped aside, not followed.
    let moved = home.join("data-moved");
    std::fs::rename(&data, &moved).unwrap();
    std::os::unix::fs::symlink(&etc, &data).unwrap();
    user.own(&data);
    env.cmd(&restore).assert().success();
    assert_untouched(&etc);
    assert!(!std::fs::symlink_metadata(&data).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), "v1");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::rename(&moved, &data).unwrap();

    // 3. No tricks: restored; the previous content waits in a private directory.
    env.cmd(&restore).assert().success();
    assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), "v1");
    let private: Vec<PathBuf> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".data.kopi-docka-")
        })
        .collect();
    assert_eq!(private.len(), 2, "{private:?}");
    for p in &private {
        let meta = std::fs::symlink_metadata(p).unwrap();
        assert!(meta.is_dir());
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (0, 0o700),
            "{}",
            p.display()
        );
    }
    assert_untouched(&etc);
    docker(&["rm", "-f", &name]);
}

const EVIL_HOST: &str = "kdtest-evil-host";
const BACKUP_ID: &str = "20261204T000000Z-beef";

/// Writes a snapshot of `dir` with restic itself, as host [`EVIL_HOST`], with our tags.
fn craft(env: &Env, dir: &Path, tags: &[&str]) {
    let mut args: Vec<String> = vec!["backup".into(), "--host".into(), EVIL_HOST.into()];
    for t in [
        "kopi-docka",
        &format!("backup_id={BACKUP_ID}"),
        "scope=standard",
    ]
    .iter()
    .chain(tags)
    {
        args.push("--tag".into());
        args.push((*t).to_owned());
    }
    args.push(dir.display().to_string());
    support::restic(&env.repo(), &env.password_file(), &args);
}

fn restore(env: &Env, unit: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["restore", "--from-host", EVIL_HOST, "--unit", unit];
    args.extend(extra);
    let out = env.cmd(&args).output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn recipe_dir(env: &Env, name: &str, unit: &str, working_dir: &Path, compose: &str) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(dir.join("compose")).unwrap();
    std::fs::write(dir.join("compose/docker-compose.yml"), compose).unwrap();
    let manifest = serde_json::json!({"unit": {
        "name": unit, "kind": "stack",
        "project": {"working_dir": working_dir, "compose_files": [
            {"path": working_dir.join("docker-compose.yml"), "present": true}]},
        "containers": [{"name": format!("{unit}_web_1"), "service": "web", "state": "running"}],
        "volumes": [], "start_order": [format!("{unit}_web_1")]
    }});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir
}

/// An installation, the canary standing in for /etc, and a directory with one file to craft
/// snapshots from.
fn crafted(test: &str) -> Option<(Env, PathBuf, PathBuf)> {
    if !support::docker_tests_enabled(test) {
        return None;
    }
    let env = Env::builder().init().build();
    let etc = canary(&env);
    let payload = env.path("payload");
    std::fs::create_dir(&payload).unwrap();
    std::fs::write(payload.join("pwned"), "pwned").unwrap();
    Some((env, etc, payload))
}

fn unit(env: &Env, n: &str) -> String {
    format!("{}-{n}", env.prefix)
}

fn out_dir(env: &Env, n: &str) -> String {
    env.path(&format!("out-{n}")).display().to_string()
}

/// `etc` without its leading `/`.
fn relative(etc: &Path) -> String {
    etc.strip_prefix("/").unwrap().display().to_string()
}

/// Issue 16.8, crafted with restic: unsafe names and paths in tags (a volume `../..`, a bind
/// with `..`, a unit `../../evil`) are not read as ours; restoring them fails and names the tag.
#[test]
fn unsafe_tags_are_refused() {
    let Some((env, etc, payload)) = crafted("unsafe_tags_are_refused") else {
        return;
    };
    // 1-3: unsafe names and paths in tags: the snapshot is not read as ours.
    let rel = relative(&etc);
    for (n, tag) in [
        ("vol", format!("volume=../../../../../../../../{rel}")),
        ("bind", format!("bind=/srv/../../{rel}")),
    ] {
        let kind = if n == "vol" {
            "type=volume"
        } else {
            "type=bind"
        };
        craft(
            &env,
            &payload,
            &[&format!("unit={}", unit(&env, n)), "kind=stack", kind, &tag],
        );
        let extra = ["--target-dir".to_owned(), out_dir(&env, n)];
        let (code, text) = restore(
            &env,
            &unit(&env, n),
            &extra.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains("is refused"), "{text}");
        assert_untouched(&etc);
    }
    craft(
        &env,
        &payload,
        &["unit=../../evil", "kind=stack", "type=recipe"],
    );
    let (code, text) = restore(
        &env,
        "../../evil",
        &["--target-dir", &out_dir(&env, "unit")],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`unit=\"../../evil\"` is refused"), "{text}");
}

/// Issue 16.8, crafted with restic: a bind `/a` holding the symlink `b -> /etc/cron.d`, then a
/// bind `/a/b`: `--target-dir` must not write the second through the first.
#[test]
fn target_dir_never_writes_through_an_earlier_part() {
    let Some((env, etc, payload)) = crafted("target_dir_never_writes_through_an_earlier_part")
    else {
        return;
    };
    // 4: a bind /a holding the symlink b -> "/etc/cron.d" (absent), then a bind /a/b:
    // --target-dir must not write the second through the first.
    let a = env.path("nested-a");
    std::fs::create_dir(&a).unwrap();
    std::os::unix::fs::symlink(etc.join("cron.d"), a.join("b")).unwrap();
    craft(
        &env,
        &a,
        &[
            &format!("unit={}", unit(&env, "nest")),
            "kind=stack",
            "type=bind",
            "bind=/srv/a",
        ],
    );
    craft(
        &env,
        &payload,
        &[
            &format!("unit={}", unit(&env, "nest")),
            "kind=stack",
            "type=bind",
            "bind=/srv/a/b",
        ],
    );
    let (code, text) = restore(
        &env,
        &unit(&env, "nest"),
        &["--target-dir", &out_dir(&env, "nest")],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("a restore does not write through it"),
        "{text}"
    );
    assert_untouched(&etc);
}

/// Issue 16.8, crafted with restic: a recipe file that goes outside the project directory
/// needs --trust-recipe (`--yes` is not enough); confirmed, it goes where the recipe says.
#[test]
fn recipe_files_outside_the_project_need_trust() {
    let Some((env, etc, _payload)) = crafted("recipe_files_outside_the_project_need_trust") else {
        return;
    };
    let rel = relative(&etc);
    // 5: a recipe that writes a file outside its project directory.
    let project = env.path("project-abs");
    let recipe = recipe_dir(
        &env,
        "recipe-abs",
        &unit(&env, "abs"),
        &project,
        "services:\n  web:\n    image: kdtest/busybox:1\n",
    );
    let abs = recipe.join("compose/_abs").join(&rel);
    std::fs::create_dir_all(&abs).unwrap();
    std::fs::write(abs.join("cron-job"), "* * * * * root evil").unwrap();
    craft(
        &env,
        &recipe,
        &[
            &format!("unit={}", unit(&env, "abs")),
            "kind=stack",
            "type=recipe",
        ],
    );
    let args = ["--only", "recipe", "--no-start", "--yes"];
    let (code, text) = restore(&env, &unit(&env, "abs"), &args);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "a file outside the project directory: {}",
            etc.join("cron-job").display()
        )),
        "{text}"
    );
    assert!(text.contains("--trust-recipe"), "{text}");
    assert_untouched(&etc);
    assert!(
        !project.exists(),
        "nothing placed in the project directory either"
    );
    // Confirmed: it goes where the recipe says.
    let (code, text) = restore(
        &env,
        &unit(&env, "abs"),
        &[&args[..], &["--trust-recipe"]].concat(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(etc.join("cron-job").exists());
    std::fs::remove_file(etc.join("cron-job")).unwrap();
}

/// Issue 16.8, crafted with restic: a privileged service with host namespaces, all
/// capabilities, /etc and the Docker socket bound in is listed in the plan and refused without
/// --trust-recipe; nothing is created.
#[test]
fn privileged_recipes_need_trust() {
    let Some((env, etc, _payload)) = crafted("privileged_recipes_need_trust") else {
        return;
    };
    // 6: a privileged service with host namespaces and /etc bound in.
    let project = env.path("project-priv");
    let evil = "services:\n  web:\n    image: kdtest/busybox:1\n    privileged: true\n    \
                network_mode: host\n    pid: host\n    cap_add: [ALL]\n    volumes:\n      \
                - /etc:/host-etc\n      - /var/run/docker.sock:/var/run/docker.sock\n";
    let recipe = recipe_dir(&env, "recipe-priv", &unit(&env, "priv"), &project, evil);
    craft(
        &env,
        &recipe,
        &[
            &format!("unit={}", unit(&env, "priv")),
            "kind=stack",
            "type=recipe",
        ],
    );
    let (code, text) = restore(&env, &unit(&env, "priv"), &["--yes"]);
    assert_eq!(code, Some(2), "{text}");
    for needle in [
        "privileged",
        "network_mode host",
        "pid host",
        "cap_add ALL",
        "binds /etc",
        "binds /var/run/docker.sock",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!project.exists());
    let created = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={}", unit(&env, "priv")),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(created, "", "no container was created");
    assert_untouched(&etc);
    // The plan shows it before asking.
    let (code, text) = restore(&env, &unit(&env, "priv"), &["--dry-run"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("needs trust: service web (docker-compose.yml): privileged"),
        "{text}"
    );
}

/// Issue 16.8, crafted with restic: a bind target under /usr and a recipe whose project
/// directory is /etc are refused before anything is written.
#[test]
fn host_internal_targets_are_refused() {
    let Some((env, etc, payload)) = crafted("host_internal_targets_are_refused") else {
        return;
    };
    // 7: a bind target under a host-internal path (standing in: /usr/local/share/<prefix>).
    let internal = PathBuf::from(format!("/usr/local/share/{}", env.prefix));
    craft(
        &env,
        &payload,
        &[
            &format!("unit={}", unit(&env, "usr")),
            "kind=standalone",
            "type=bind",
            &format!("bind={}", internal.display()),
        ],
    );
    let (code, text) = restore(
        &env,
        &unit(&env, "usr"),
        &["--only", "binds", "--no-start", "--yes"],
    );
    let leaked = internal.exists();
    if leaked {
        std::fs::remove_dir_all(&internal).unwrap();
    }
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("under the host-internal path /usr"), "{text}");
    assert!(!leaked, "{} was written", internal.display());
    // 8: a recipe whose project directory is /etc.
    let etc_compose = Path::new("/etc/docker-compose.yml");
    let before = std::fs::read(etc_compose).ok();
    let recipe = recipe_dir(
        &env,
        "recipe-etc",
        &unit(&env, "etcdir"),
        Path::new("/etc"),
        "services: {}\n",
    );
    craft(
        &env,
        &recipe,
        &[
            &format!("unit={}", unit(&env, "etcdir")),
            "kind=stack",
            "type=recipe",
        ],
    );
    let (code, text) = restore(
        &env,
        &unit(&env, "etcdir"),
        &["--only", "recipe", "--no-start", "--yes"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the recipe's project directory"), "{text}");
    assert_eq!(std::fs::read(etc_compose).ok(), before, "/etc untouched");
    assert_untouched(&etc);
}
