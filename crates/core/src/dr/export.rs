//! Writing a bundle: sealed in memory for a stream, or into a new file.
//!
//! The archive exists only in memory; it goes straight into the encryptor. Choosing or
//! generating the passphrase is the caller's: a generated one must be shown on a terminal.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Bundle, DrError, Passphrase, RecoveryInfo, bundle};

/// What an export wrote (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// The bundle file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The passphrase was generated (and is shown once, outside this report).
    pub passphrase_generated: bool,
    /// What the bundle says about the host.
    pub info: RecoveryInfo,
}

/// The encrypted bundle, for writing to a stream.
pub fn seal(bundle: &Bundle, passphrase: &Passphrase) -> Result<Vec<u8>, DrError> {
    let plaintext = bundle.to_tar()?;
    let mut sealed = Vec::new();
    bundle::encrypt(&plaintext, passphrase, &mut sealed)?;
    Ok(sealed)
}

/// Writes the encrypted bundle to `file` (default: named after the host and time, in the
/// current directory); an existing file is never overwritten.
pub fn write(
    bundle: &Bundle,
    info: RecoveryInfo,
    passphrase: &Passphrase,
    file: Option<PathBuf>,
    passphrase_generated: bool,
) -> Result<ExportReport, DrError> {
    let plaintext = bundle.to_tar()?;
    let file =
        file.unwrap_or_else(|| bundle::default_name(Path::new("."), &info.host, info.created_at));
    bundle::write_new(&file, &plaintext, passphrase)?;
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    Ok(ExportReport {
        file,
        bytes,
        passphrase_generated,
        info,
    })
}
