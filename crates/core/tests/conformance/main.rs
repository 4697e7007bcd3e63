//! Conformance of the core against the shared reference vectors (read in
//! place from `../shared/testdata`), independent implementations and a
//! pinned storage format.

mod audit;
mod entries;
mod golden;
mod notes;
mod properties;
mod receipts;
mod rfc6962;
mod tessera;

use std::path::{Path, PathBuf};

/// The shared reference vectors, beside the project checkout.
pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
}

pub(crate) fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = testdata().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn read_text(path: impl AsRef<Path>) -> String {
    String::from_utf8(read(path)).expect("UTF-8 vector")
}
