//! The bundle file format, shared by `parpy bundle` (which writes it) and the
//! launcher stub (which reads it). The stub compiles this file on its own
//! (`#[path]`), so it uses nothing but `std` and `sha2`.
//!
//! ```text
//! [ launcher stub (an ELF executable) ][ payload ][ trailer, 64 bytes ]
//!
//! payload = a zstd-compressed tar of the runtime tree:
//!     bin/parpy                   parpy itself (finds ../lib/libpython by its rpath)
//!     lib/libpython3.X.so.1.0     the libpython parpy was built against
//!     lib/python3.X/...           the standard library (site-packages: the app's dependencies)
//!     app/<script>, app/<added>   the script and the paths given with --add
//!     parpy-bundle.txt            `key=value` lines; `main=<script file name>`
//! trailer = MAGIC | payload offset (u64 LE) | payload length (u64 LE) | sha256(payload) | END
//! ```

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// First bytes of the trailer (the `1` is the format version).
pub const MAGIC: &[u8; 8] = b"PARPYBN1";
/// Last bytes of the trailer, and so of a bundle file.
pub const END: &[u8; 8] = b"PARPYEND";
/// The trailer's size in bytes.
pub const TRAILER_LEN: u64 = 64;
/// The manifest's path inside the payload.
pub const MANIFEST: &str = "parpy-bundle.txt";

/// Where the payload lies in a bundle file, and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub offset: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// Why a file is not a usable bundle.
#[derive(Debug)]
pub enum ReadError {
    /// No trailer at all: not a bundle.
    NotABundle,
    /// A trailer whose numbers do not fit the file (truncated, or bytes appended).
    Damaged(String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl Trailer {
    pub fn to_bytes(self) -> [u8; TRAILER_LEN as usize] {
        let mut b = [0u8; TRAILER_LEN as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..56].copy_from_slice(&self.sha256);
        b[56..64].copy_from_slice(END);
        b
    }

    /// Parses a trailer; `None` when the magic bytes are missing.
    pub fn parse(b: &[u8; TRAILER_LEN as usize]) -> Option<Trailer> {
        if &b[0..8] != MAGIC || &b[56..64] != END {
            return None;
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[24..56]);
        Some(Trailer {
            offset: u64::from_le_bytes(b[8..16].try_into().ok()?),
            len: u64::from_le_bytes(b[16..24].try_into().ok()?),
            sha256,
        })
    }

    /// Reads the trailer at the end of `file` (whose size is `file_len`) and
    /// checks that the payload it describes ends right before it.
    pub fn read(file: &File, file_len: u64) -> Result<Trailer, ReadError> {
        if file_len < TRAILER_LEN {
            return Err(ReadError::NotABundle);
        }
        let mut b = [0u8; TRAILER_LEN as usize];
        file.read_exact_at(&mut b, file_len - TRAILER_LEN)?;
        let t = Trailer::parse(&b).ok_or(ReadError::NotABundle)?;
        let end = t
            .offset
            .checked_add(t.len)
            .and_then(|e| e.checked_add(TRAILER_LEN));
        if end != Some(file_len) {
            return Err(ReadError::Damaged(format!(
                "its trailer describes {} payload bytes at offset {}, but the file has {} bytes \
                 (truncated, or bytes were added)",
                t.len, t.offset, file_len
            )));
        }
        Ok(t)
    }

    /// The checksum in lowercase hex: the bundle's cache folder name.
    pub fn hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The value of `key` in a manifest's `key=value` lines.
pub fn manifest_value<'a>(manifest: &'a str, key: &str) -> Option<&'a str> {
    manifest.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips() {
        let t = Trailer {
            offset: 1234,
            len: 99,
            sha256: sha256(b"payload"),
        };
        assert_eq!(Trailer::parse(&t.to_bytes()), Some(t));
        let mut b = t.to_bytes();
        b[0] ^= 1;
        assert_eq!(Trailer::parse(&b), None);
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn manifest_lookup() {
        let m = "version=1\nmain = app.py\n";
        assert_eq!(manifest_value(m, "main"), Some("app.py"));
        assert_eq!(manifest_value(m, "other"), None);
    }
}
