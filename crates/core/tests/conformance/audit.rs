//! The streaming audit over the Tessera log: accepted as published, and
//! rejected after any single-bit change to a file its tree needs.

use std::collections::HashMap;

use evault_core::tile::{BundleId, TileId};
use evault_core::{AuditError, LogSource, VerifierKey, audit, audit_with_entries, parse_bundle};

const VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

/// A log held as files in memory, by path.
struct Files(HashMap<String, Vec<u8>>);

impl Files {
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "not found".to_string())
    }
}

impl LogSource for Files {
    type Error = String;
    fn checkpoint(&mut self) -> Result<Vec<u8>, String> {
        self.get("checkpoint")
    }
    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.get(&tile.path())
    }
    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, String> {
        self.get(&bundle.path())
    }
}

const NEEDED: [&str; 3] = ["checkpoint", "tile/0/000.p/15", "tile/entries/000.p/15"];

fn tessera() -> Files {
    Files(
        NEEDED
            .iter()
            .map(|p| (p.to_string(), super::read(format!("tessera-log/{p}"))))
            .collect(),
    )
}

#[test]
fn tessera_log_passes_its_audit() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let mut seen = Vec::new();
    let report = audit(
        &mut tessera(),
        &keys,
        Some("example.com/log/testdata"),
        None,
        &mut |done, total| seen.push((done, total)),
    )
    .expect("audit");
    assert_eq!(report.checkpoint.size, 15);
    assert_eq!((report.tiles, report.bundles), (1, 1));
    assert_eq!(seen, [(15, 15)]);
}

#[test]
fn any_single_bit_change_fails_the_audit() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    for path in NEEDED {
        let original = tessera().0[path].clone();
        for i in 0..original.len() {
            for bit in 0..8 {
                let mut log = tessera();
                log.0.get_mut(path).expect("file")[i] ^= 1 << bit;
                let verdict = audit(&mut log, &keys, None, None, &mut |_, _| {});
                assert!(verdict.is_err(), "{path} byte {i} bit {bit} passed");
            }
        }
    }
}

#[test]
fn missing_tile_is_reported_by_path() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let mut log = tessera();
    log.0.remove("tile/0/000.p/15");
    match audit(&mut log, &keys, None, None, &mut |_, _| {}) {
        Err(AuditError::Read { path, .. }) => assert_eq!(path, "tile/0/000.p/15"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn entries_are_handed_over_in_index_order() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let log = tessera();
    let bundle = log.0["tile/entries/000.p/15"].clone();
    let expected: Vec<(u64, Vec<u8>)> = (0..)
        .zip(parse_bundle(&bundle, Some(15)).expect("bundle"))
        .map(|(i, e)| (i, e.to_vec()))
        .collect();
    let mut seen = Vec::new();
    let report = audit_with_entries(
        &mut tessera(),
        &keys,
        None,
        None,
        &mut |_, _| {},
        &mut |index, entry| {
            seen.push((index, entry.to_vec()));
            Ok(())
        },
    )
    .expect("audit");
    assert_eq!(report.checkpoint.size, 15);
    assert_eq!(seen, expected);
}

#[test]
fn an_entry_the_caller_refuses_ends_the_audit_naming_its_index() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let mut handed = 0;
    let verdict = audit_with_entries(
        &mut tessera(),
        &keys,
        None,
        None,
        &mut |_, _| {},
        &mut |index, _| {
            handed += 1;
            if index == 6 {
                Err("not a record".into())
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(
        verdict,
        Err(AuditError::Entry {
            index: 6,
            reason: "not a record".into()
        })
    );
    assert_eq!(handed, 7, "no entry is handed over after a refusal");
    assert_eq!(
        verdict.expect_err("refused").to_string(),
        "entry 6: not a record"
    );
}
