//! The Debian package's contents: `[package.metadata.deb] assets` in crates/cli/Cargo.toml
//! must list every file `scripts/package-deb.sh` generates and every file it ships from the
//! tree, so a new unit, man page or example config cannot be left out of the .deb silently.
//! Building the .deb itself takes a release build: `scripts/package-deb.sh` (README).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::path::{Path, PathBuf};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");
const GENERATED: &str = "../../target/package-assets/";

/// (source, destination directory) of every asset.
fn assets() -> Vec<(String, String)> {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(Path::new(CRATE).join("Cargo.toml")).unwrap())
            .unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| {
            let asset = asset.as_array().unwrap();
            (
                asset[0].as_str().unwrap().to_owned(),
                asset[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Files in `dir` whose names end in `suffix` (what `dir/*suffix` matches).
fn matching(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// The asset whose source is `source`; its destination.
fn destination_of(assets: &[(String, String)], source: &str) -> String {
    assets
        .iter()
        .find(|(s, _)| s == source)
        .unwrap_or_else(|| panic!("{source} is not in [package.metadata.deb] assets"))
        .1
        .clone()
}

/// Every asset from the tree exists; every generated file the script makes is listed, at the
/// place its kind belongs.
#[test]
fn the_package_lists_every_asset() {
    let assets = assets();
    let root = Path::new(CRATE).join("../..");

    // From the tree: each exists (a glob matches at least one file), and the globs cover
    // every example config and doc page.
    for (source, _) in &assets {
        if source.starts_with(GENERATED) || source == "target/release/kopi-docka" {
            continue;
        }
        let path = Path::new(CRATE).join(source);
        match source.rsplit_once("/*") {
            Some((dir, suffix)) => assert!(
                !matching(&Path::new(CRATE).join(dir), suffix).is_empty(),
                "{source} matches nothing"
            ),
            None => assert!(path.is_file(), "{source} does not exist"),
        }
    }
    assert_eq!(
        destination_of(&assets, "../../examples/config/*.toml"),
        "usr/share/doc/kopi-docka/examples/"
    );
    assert_eq!(
        matching(&root.join("examples/config"), "").len(),
        matching(&root.join("examples/config"), ".toml").len(),
        "an example config that is not *.toml would be left out"
    );
    assert_eq!(
        destination_of(&assets, "target/release/kopi-docka"),
        "usr/bin/"
    );

    // Generated: the units write-units renders, each listed.
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    support::kopi_docka()
        .env("KOPI_DOCKA_STATE_DIR", dir.path().join("state"))
        .env("KOPI_DOCKA_CACHE_DIR", dir.path().join("cache"))
        .args(["admin", "service", "write-units", "--output-dir"])
        .arg(&units)
        .assert()
        .success();
    let rendered = matching(&units, "");
    assert_eq!(rendered.len(), 3, "{rendered:?}");
    for unit in rendered {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            destination_of(&assets, &format!("{GENERATED}units/{name}")),
            "usr/lib/systemd/system/",
            "{name}"
        );
    }
    // Man pages: every page `admin man` writes, compressed by the script, under one glob.
    assert_eq!(
        destination_of(&assets, &format!("{GENERATED}man/*.1.gz")),
        "usr/share/man/man1/"
    );
    let script = std::fs::read_to_string(root.join("scripts/package-deb.sh")).unwrap();
    assert!(script.contains(r#"gzip -9n "$assets"/man/*.1"#));
    // Completions: the file each shell looks for, written by the script and listed.
    for (shell, file, destination) in [
        (
            "bash",
            "kopi-docka",
            "usr/share/bash-completion/completions/",
        ),
        ("zsh", "_kopi-docka", "usr/share/zsh/vendor-completions/"),
        (
            "fish",
            "kopi-docka.fish",
            "usr/share/fish/vendor_completions.d/",
        ),
    ] {
        assert!(
            script.contains(&format!(
                r#"admin completions {shell} >"$assets/completions/{file}""#
            )),
            "the script writes {file}"
        );
        assert_eq!(
            destination_of(&assets, &format!("{GENERATED}completions/{file}")),
            destination
        );
    }
}
