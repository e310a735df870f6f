//! Files for tests: the fixtures, private files, incompressible data.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::process::run;

/// Copies a fixture directory from this crate's `fixtures/` into `dest`.
pub fn copy_fixture(name: &str, dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest));
}

/// Writes `text` to `path` readable by its owner only, as every secret file must be.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes `bytes` (a multiple of 1 MiB) of incompressible pseudo-random data to `path`.
pub fn fill_random(path: &Path, bytes: usize) {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0_u8; 1 << 20];
    for _ in 0..bytes / block.len() {
        for chunk in block.chunks_mut(8) {
            // xorshift64*: incompressible and fast enough.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
}

/// Panics when `secret` shows in a command's stdout or stderr, or in any file below `dirs`
/// (state, cache, logs): a leak check that reads only stdout misses the log and the files a
/// run leaves behind.
pub fn assert_not_leaked(secret: &str, output: &std::process::Output, dirs: &[&Path]) {
    assert!(!secret.is_empty(), "an empty secret is found everywhere");
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(secret), "the secret is in {name}:\n{text}");
    }
    for dir in dirs {
        let found = files_containing(dir, secret.as_bytes());
        assert!(found.is_empty(), "the secret is in {found:?}");
    }
}

/// Regular files below `dir` (symlinks not followed) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}
