//! Hashing files as evidence.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// SHA-256 and size of the file at `path`, read in chunks; with `keep`,
/// its bytes too.
pub(crate) fn digest_file(
    path: &Path,
    keep: bool,
) -> std::io::Result<([u8; 32], u64, Option<Vec<u8>>)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    let mut kept = keep.then(Vec::new);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
        size += n as u64;
    }
    Ok((hasher.finalize().into(), size, kept))
}
