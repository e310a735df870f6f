//! Every documented example config parses, and the full example states the real defaults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use std::path::{Path, PathBuf};

use kopi_docka_core::config::{self, Config, defaults};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config")
}

#[test]
fn every_example_parses() {
    let mut files: Vec<_> = std::fs::read_dir(example_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "examples/config should hold the documented examples: {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        config::parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn full_example_lists_the_default_host_internal_paths() {
    let file = example_dir().join("full.toml");
    let full: Config = config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let listed: Vec<String> = full
        .discovery
        .host_internal_paths
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(listed, defaults::HOST_INTERNAL_PATHS);
}
