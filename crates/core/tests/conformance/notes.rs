//! The signed-note vectors of golang.org/x/mod/sumdb/note and C2SP.

use evault_core::{Note, NoteError, SigningKey, VerifierKey};

struct Vectors {
    signer: String,
    verifiers: Vec<String>,
    bad_verifiers: Vec<String>,
    text: String,
    note: String,
}

/// The text between the line `start` and the line `end`, newlines kept.
fn block<'a>(file: &'a str, start: &str, end: &str) -> &'a str {
    let at = file.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let len = file[at..].find(end).unwrap_or_else(|| panic!("no {end:?}"));
    &file[at..=at + len]
}

fn vectors() -> Vectors {
    let file = super::read_text("notes/signed-notes.txt");
    let values = |name: &str| -> Vec<String> {
        file.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": ").map(str::to_string))
            .collect()
    };
    Vectors {
        signer: values("signer-key").remove(0),
        verifiers: values("verifier-key"),
        bad_verifiers: values("bad-verifier-key"),
        text: block(&file, "\ntext:\n", "\nnote:\n").to_string(),
        note: block(&file, "\nnote:\n", "\nend\n").to_string(),
    }
}

#[test]
fn signing_the_text_reproduces_the_published_note_signature() {
    let v = vectors();
    assert!(!v.text.is_empty() && v.note.starts_with(&v.text));
    let key = SigningKey::from_note_key(&v.signer).expect("signer key");
    assert_eq!(key.verifier_key().to_string(), v.verifiers[0]);
    let mut note = Note::new(&v.text).expect("text");
    note.sign(&key).expect("sign");
    let published = Note::parse(v.note.as_bytes()).expect("parse");
    assert_eq!(note.signatures()[0], published.signatures()[0]);
    assert_eq!(published.to_bytes(), v.note.as_bytes());
}

#[test]
fn note_with_two_signatures_verifies_with_either_key() {
    let v = vectors();
    let keys: Vec<VerifierKey> = v
        .verifiers
        .iter()
        .map(|k| VerifierKey::parse(k).expect("vkey"))
        .collect();
    let note = Note::parse(v.note.as_bytes()).expect("parse");
    assert_eq!(note.signatures().len(), 2);
    assert_eq!(note.verify(&keys).expect("both").len(), 2);
    for key in &keys {
        let one = [key.clone()];
        assert_eq!(note.verify(&one).expect("one"), vec![key]);
    }
}

#[test]
fn unknown_keys_are_ignored_but_not_enough() {
    let v = vectors();
    let (stranger, _) = SigningKey::generate("Stranger").expect("key");
    let note = Note::parse(v.note.as_bytes()).expect("parse");
    let mut keys = vec![stranger.verifier_key().clone()];
    assert!(matches!(
        note.verify(&keys),
        Err(NoteError::NoTrustedSignature { .. })
    ));
    keys.push(VerifierKey::parse(&v.verifiers[1]).expect("vkey"));
    assert_eq!(note.verify(&keys).expect("verify").len(), 1);
}

#[test]
fn bad_signature_by_a_known_key_rejects_the_note() {
    let v = vectors();
    let keys: Vec<VerifierKey> = v
        .verifiers
        .iter()
        .map(|k| VerifierKey::parse(k).expect("vkey"))
        .collect();
    let tampered = v.note.replacen("answer", "ANSWER", 1);
    let note = Note::parse(tampered.as_bytes()).expect("still well-formed");
    assert!(matches!(
        note.verify(&keys),
        Err(NoteError::BadSignature { .. })
    ));
    // Even when the other signature is by a key the verifier does not know.
    assert!(matches!(
        note.verify(&keys[..1]),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn malformed_verifier_keys_are_rejected() {
    let v = vectors();
    assert_eq!(v.bad_verifiers.len(), 3);
    for k in &v.bad_verifiers {
        assert!(VerifierKey::parse(k).is_err(), "{k} accepted");
    }
}

#[test]
fn malformed_notes_are_rejected() {
    let v = vectors();
    let good = v.note.clone();
    for bad in [
        good.replace("\n\n", "\n"),
        good.trim_end_matches('\n').to_string(),
        good.replace("\u{2014} ", "- "),
        good.replace("PeterNeumann x08", "PeterNeumann !x08"),
        format!("{}\r\n", good),
        good.replacen("If you", "If\tyou", 1),
        format!("{good}\u{2014} Short AAAA\n"),
    ] {
        assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?} accepted");
    }
}
