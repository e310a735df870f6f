//! The bundle file: a tar archive built in memory, encrypted with age (passphrase, scrypt).
//!
//! The plaintext never touches a disk: the archive is a `Vec<u8>` that goes straight into the
//! age encryptor, and decryption reads into memory. A stock `age -d` followed by `tar x`
//! unpacks it on a machine without kopi-docka.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use super::DrError;

/// A bundle is small (configs and keys); anything bigger is not one of ours.
const MAX_PLAINTEXT: u64 = 64 << 20;

/// A passphrase. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Passphrase {
    /// Wraps a passphrase from a file or the environment (surrounding whitespace dropped).
    pub fn new(text: &str) -> Result<Self, DrError> {
        let text = text.trim();
        if text.len() < 12 {
            return Err(DrError::WeakPassphrase);
        }
        Ok(Self(text.to_owned()))
    }

    /// Wraps a passphrase typed at a prompt: only the line ending goes, spaces are part of
    /// what was typed (a file's surrounding whitespace is not, see [`Passphrase::new`]).
    pub fn typed(line: &str) -> Result<Self, DrError> {
        let text = line.strip_suffix('\n').unwrap_or(line);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.len() < 12 {
            return Err(DrError::WeakPassphrase);
        }
        Ok(Self(text.to_owned()))
    }

    /// 140 random bits as seven groups of four base32 letters and digits
    /// (`ABCD-EFGH-...`): easy to read aloud and to type.
    pub fn generate() -> std::io::Result<Self> {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut bytes = [0_u8; 28];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let chars: Vec<char> = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
        Ok(Self(groups.join("-")))
    }

    /// The passphrase, for showing it once to the user.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.clone())
    }
}

/// One file in a bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive (relative, `/`-separated).
    pub name: String,
    /// Permission bits.
    pub mode: u32,
    /// Content.
    pub data: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Entry({}, {:o}, {} bytes)",
            self.name,
            self.mode,
            self.data.len()
        )
    }
}

/// The files of a bundle.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// In archive order.
    pub entries: Vec<Entry>,
}

impl Bundle {
    /// Adds a file.
    pub fn add(&mut self, name: &str, mode: u32, data: Vec<u8>) {
        self.entries.push(Entry {
            name: name.to_owned(),
            mode,
            data,
        });
    }

    /// The file named `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The tar archive, in memory.
    pub fn to_tar(&self) -> Result<Vec<u8>, DrError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mtime = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
        for entry in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(entry.data.len() as u64);
            header.set_mode(entry.mode);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, &entry.name, entry.data.as_slice())
                .map_err(DrError::Archive)?;
        }
        builder.into_inner().map_err(DrError::Archive)
    }

    /// Reads an archive made by [`Bundle::to_tar`]; entries with unsafe paths are refused.
    pub fn from_tar(bytes: &[u8]) -> Result<Self, DrError> {
        let mut archive = tar::Archive::new(bytes);
        let mut bundle = Self::default();
        for entry in archive.entries().map_err(DrError::Archive)? {
            let mut entry = entry.map_err(DrError::Archive)?;
            let path = entry.path().map_err(DrError::Archive)?.into_owned();
            let safe = path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Err(DrError::NotABundle(format!(
                    "entry {} escapes the bundle",
                    path.display()
                )));
            }
            let mode = entry.header().mode().map_err(DrError::Archive)?;
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(DrError::Archive)?;
            bundle.add(&path.to_string_lossy(), mode, data);
        }
        Ok(bundle)
    }
}

/// Encrypts `plaintext` for `passphrase` into `out`.
pub fn encrypt(plaintext: &[u8], passphrase: &Passphrase, out: impl Write) -> Result<(), DrError> {
    let encryptor = age::Encryptor::with_user_passphrase(passphrase.secret());
    let mut writer = encryptor.wrap_output(out).map_err(DrError::Write)?;
    writer.write_all(plaintext).map_err(DrError::Write)?;
    let mut out = writer.finish().map_err(DrError::Write)?;
    out.flush().map_err(DrError::Write)
}

/// Decrypts and authenticates a bundle. A wrong passphrase, a flipped byte and a truncated file
/// are all errors; nothing partial is returned.
pub fn decrypt(input: impl Read, passphrase: &Passphrase) -> Result<Vec<u8>, DrError> {
    let reader = std::io::BufReader::new(input);
    let decryptor = age::Decryptor::new_buffered(reader).map_err(DrError::from_age)?;
    if !decryptor.is_scrypt() {
        return Err(DrError::NotABundle(
            "it is an age file for key recipients, not a passphrase-protected bundle".into(),
        ));
    }
    let identity = age::scrypt::Identity::new(passphrase.secret());
    let mut stream = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(DrError::from_age)?;
    let mut plaintext = Vec::new();
    (&mut stream)
        .take(MAX_PLAINTEXT + 1)
        .read_to_end(&mut plaintext)
        .map_err(|e| DrError::Corrupt(e.to_string()))?;
    if plaintext.len() as u64 > MAX_PLAINTEXT {
        return Err(DrError::NotABundle("it is larger than any bundle".into()));
    }
    Ok(plaintext)
}

/// Creates `path` with `O_EXCL` and mode 0600 and writes the encrypted bundle into it. An
/// existing file is never overwritten; a failed write removes the partial file.
pub fn write_new(path: &Path, plaintext: &[u8], passphrase: &Passphrase) -> Result<(), DrError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| DrError::Output {
            path: path.to_path_buf(),
            source,
        })?;
    let result = encrypt(plaintext, passphrase, std::io::BufWriter::new(&file))
        .and_then(|()| file.sync_all().map_err(DrError::Write));
    if result.is_err()
        && let Err(error) = std::fs::remove_file(path)
    {
        tracing::warn!(%error, path = %path.display(), "cannot remove the partial bundle");
    }
    result
}

/// `<dir>/kopi-docka-dr-<host>-<UTC time>.age`.
pub fn default_name(dir: &Path, host: &str, now: jiff::Timestamp) -> PathBuf {
    dir.join(format!(
        "kopi-docka-dr-{host}-{}.age",
        crate::durable::stamp(now)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        let mut b = Bundle::default();
        b.add("config.toml", 0o600, b"[repository]\n".to_vec());
        b.add("ssh/id_ed25519", 0o600, b"KEY".to_vec());
        b
    }

    #[test]
    fn generated_passphrases_are_long_and_grouped() {
        let p = Passphrase::generate().unwrap();
        assert_eq!(p.reveal().len(), 7 * 4 + 6);
        assert_eq!(p.reveal().split('-').count(), 7);
        assert_ne!(p, Passphrase::generate().unwrap());
        assert!(format!("{p:?}").contains("***"));
        assert!(Passphrase::new("short").is_err());
    }

    /// A typed passphrase loses its line ending only; a file's loses its surrounding spaces.
    #[test]
    fn typed_passphrases_keep_their_spaces() {
        let typed = Passphrase::typed("  correct horse  \r\n").unwrap();
        assert_eq!(typed.reveal(), "  correct horse  ");
        assert_eq!(
            Passphrase::typed(" twelve chars\n").unwrap().reveal(),
            " twelve chars"
        );
        assert!(Passphrase::typed("short       \n").is_ok());
        assert!(Passphrase::typed("short\n").is_err());
        let file = Passphrase::new("  correct horse  \n").unwrap();
        assert_eq!(file.reveal(), "correct horse");
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let pass = Passphrase::new("correct horse battery").unwrap();
        let tar = bundle().to_tar().unwrap();
        let mut sealed = Vec::new();
        encrypt(&tar, &pass, &mut sealed).unwrap();
        let opened = Bundle::from_tar(&decrypt(sealed.as_slice(), &pass).unwrap()).unwrap();
        assert_eq!(opened.get("ssh/id_ed25519").unwrap().data, b"KEY");
        assert_eq!(opened.get("config.toml").unwrap().mode, 0o600);

        let wrong = Passphrase::new("wrong horse battery").unwrap();
        assert!(decrypt(sealed.as_slice(), &wrong).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 20;
        flipped[last] ^= 1;
        assert!(decrypt(flipped.as_slice(), &pass).is_err());
        let truncated = &sealed[..sealed.len() - 10];
        assert!(decrypt(truncated, &pass).is_err());
    }
}
