//! The Tessera-written tile log: tiles and bundles reproduced byte for byte
//! from its 15 entries, every checkpoint verified, and the signature of the
//! last one reproduced with the published test key.

use evault_core::tile::{BundleId, TileId};
use evault_core::{
    Checkpoint, Integrator, Note, SigningKey, VerifierKey, encode_bundle, leaf_hash,
    open_checkpoint,
};

const WORDS: &str =
    "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten";
const VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";

fn entries() -> Vec<&'static [u8]> {
    WORDS.split(' ').map(str::as_bytes).collect()
}

#[test]
fn tiles_and_bundles_are_reproduced_at_every_size() {
    let entries = entries();
    assert_eq!(entries.len(), 15);
    let mut tree = Integrator::new();
    for (i, entry) in entries.iter().enumerate() {
        let size = i as u64 + 1;
        let tiles = tree.integrate([leaf_hash(entry)]);
        let expected_tile = TileId {
            level: 0,
            index: 0,
            width: size as u16,
        };
        assert_eq!(tiles.len(), 1);
        assert_eq!(tiles[0].0, expected_tile);
        assert_eq!(
            tiles[0].1,
            super::read(format!("tessera-log/{}", expected_tile.path())),
            "tile at size {size}"
        );

        let bundle = BundleId {
            index: 0,
            width: size as u16,
        };
        assert_eq!(
            encode_bundle(&entries[..=i]).expect("bundle"),
            super::read(format!("tessera-log/{}", bundle.path())),
            "bundle at size {size}"
        );

        let note = super::read(format!("tessera-log/checkpoint.{size}"));
        let cp = Note::parse(&note).expect("note");
        let cp = Checkpoint::parse(cp.text()).expect("checkpoint");
        assert_eq!(cp.size, size);
        assert_eq!(cp.root, tree.root(), "root at size {size}");
    }
    assert_eq!(
        super::read("tessera-log/checkpoint"),
        super::read("tessera-log/checkpoint.15")
    );
}

#[test]
fn every_checkpoint_verifies_with_the_published_key() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    for size in 0..=15 {
        let note = super::read(format!("tessera-log/checkpoint.{size}"));
        let signed =
            open_checkpoint(&note, &keys, Some("example.com/log/testdata")).expect("verify");
        assert_eq!(signed.checkpoint.size, size);
    }
}

#[test]
fn signature_of_checkpoint_15_is_reproduced() {
    let key = SigningKey::from_note_key(SKEY).expect("signing key");
    assert_eq!(key.verifier_key().to_string(), VKEY);
    let published = super::read("tessera-log/checkpoint.15");
    let text = Note::parse(&published).expect("note").text().to_string();
    let checkpoint = Checkpoint::parse(&text).expect("checkpoint");
    assert_eq!(checkpoint.sign(&[&key]).expect("sign"), published);
}

#[test]
fn any_flipped_bit_in_a_checkpoint_is_rejected() {
    let keys = [VerifierKey::parse(VKEY).expect("vkey")];
    let published = super::read("tessera-log/checkpoint.15");
    for i in 0..published.len() {
        for bit in 0..8 {
            let mut bytes = published.clone();
            bytes[i] ^= 1 << bit;
            assert!(
                open_checkpoint(&bytes, &keys, None).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
}
