//! C2SP signed notes with Ed25519 signatures, and their keys.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one line
//! per signature: `— <key name> <base64(key ID ‖ signature)>`. Verification
//! follows golang.org/x/mod/sumdb/note: signatures by unknown keys are
//! ignored (a witness may add its own), a bad signature by a known key
//! rejects the whole note, and a note no known key signed is rejected.
//!
//! Keys use the same textual forms as the Go package:
//! verifier keys `<name>+<hex key ID>+<base64(0x01 ‖ public key)>` and
//! signing keys `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ seed)>`.
//! The vault's own signing keys live in PKCS#8 files instead (see
//! [`SigningKey::from_pkcs8`]), the format HSMs and OpenSSL exchange.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::hash::sha256;

/// Algorithm byte of an Ed25519 note key.
pub const ALG_ED25519: u8 = 0x01;
/// The most bytes [`Note::parse`] reads: far above any checkpoint.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// The most signature lines [`Note::parse`] accepts.
pub const MAX_SIGNATURES: usize = 100;

const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not a key of the expected shape.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// The key ID does not match the name and key it claims to identify.
    #[error("key ID {claimed:08x} does not match the key (expected {computed:08x})")]
    WrongKeyId {
        /// ID written in the key.
        claimed: u32,
        /// ID computed from name and key.
        computed: u32,
    },
    /// The key is for an algorithm other than Ed25519.
    #[error("unsupported key algorithm 0x{0:02x}")]
    Algorithm(u8),
}

/// Why a note was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The bytes are not a well-formed signed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A known key's signature does not verify: the note was altered or
    /// forged.
    #[error("invalid signature by {name}+{key_id:08x}")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature is by any of the trusted keys.
    #[error("no signature by a trusted key (signed by: {signers})")]
    NoTrustedSignature {
        /// The names on the signature lines, for the error message.
        signers: String,
    },
    /// The note text cannot be signed.
    #[error("note text must be non-empty UTF-8 ending in a newline, without control characters")]
    BadText,
    /// A signing key failed, or produced a signature its own verifier key
    /// rejects (a token answering with another key than it claims to hold).
    #[error("signing key {key}: {reason}")]
    Signer {
        /// The key's verifier key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

/// Whatever signs note text with an Ed25519 key under a name: a key in
/// memory ([`SigningKey`]) or one that never leaves a hardware token.
///
/// A signer may fail (a token unplugged, a session lost); [`Note::sign`]
/// turns that into [`NoteError::Signer`] and checks every signature it is
/// given against [`NoteSigner::verifier_key`] before using it.
pub trait NoteSigner: Send + Sync {
    /// The verifier key of this signer: its name, key ID and public key.
    fn verifier_key(&self) -> &VerifierKey;

    /// The 64-byte Ed25519 signature of `text`.
    fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, String>;
}

/// Whether a key name is valid: non-empty, no white space, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// The 32-bit key ID: the first four bytes of SHA-256(name ‖ 0x0A ‖ key),
/// where `key` starts with its algorithm byte.
pub fn key_id(name: &str, key: &[u8]) -> u32 {
    let mut input = Vec::with_capacity(name.len() + 1 + key.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(key);
    let digest = sha256(&input);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Splits `name+hexid+base64` into its parts and checks the name and ID
/// syntax; returns the name, the claimed ID and the decoded key.
fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), KeyError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed("expected <name>+<key ID>+<key>"));
    };
    if !is_valid_key_name(name) {
        return Err(KeyError::Malformed("invalid key name"));
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::Malformed("key ID is not 8 hexadecimal digits"));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| KeyError::Malformed("key ID"))?;
    let key = BASE64
        .decode(key)
        .map_err(|_| KeyError::Malformed("key is not base64"))?;
    Ok((name, id, key))
}

fn ed25519_key(key: &[u8]) -> Result<[u8; 32], KeyError> {
    match key.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| KeyError::Malformed("Ed25519 key is not 32 bytes")),
        Some((&alg, _)) => Err(KeyError::Algorithm(alg)),
        None => Err(KeyError::Malformed("empty key")),
    }
}

/// A public key that checks note signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// Parses `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, claimed, key) = split_key(text.trim_end_matches(['\n', '\r']))?;
        let computed = key_id(name, &key);
        if claimed != computed {
            return Err(KeyError::WrongKeyId { claimed, computed });
        }
        Ok(VerifierKey {
            name: name.to_string(),
            key_id: computed,
            public_key: ed25519_key(&key)?,
        })
    }

    /// The key's name, which for a log key is the log's origin.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }

    /// The verifier key of the Ed25519 `public_key` signing under `name`,
    /// e.g. a key that lives in a hardware token.
    pub fn from_public_key(name: &str, public_key: [u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::Malformed("invalid key name"));
        }
        Ok(Self::named(name, public_key))
    }

    fn named(name: &str, public_key: [u8; 32]) -> Self {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&public_key);
        VerifierKey {
            name: name.to_string(),
            key_id: key_id(name, &key),
            public_key,
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public_key);
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(key)
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// Parses verifier keys, one per non-empty line; `#` starts a comment line.
pub fn parse_verifier_keys(text: &str) -> Result<Vec<VerifierKey>, KeyError> {
    let keys: Vec<VerifierKey> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(VerifierKey::parse)
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Malformed("no verifier key found"));
    }
    Ok(keys)
}

/// A private key that signs notes under a name.
pub struct SigningKey {
    name: String,
    pair: Ed25519KeyPair,
    verifier: VerifierKey,
}

impl SigningKey {
    /// Parses the Go note form `PRIVATE+KEY+<name>+<hex ID>+<base64(0x01 ‖ seed)>`.
    pub fn from_note_key(text: &str) -> Result<Self, KeyError> {
        let rest = text
            .trim_end_matches(['\n', '\r'])
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed("missing PRIVATE+KEY+ prefix"))?;
        let (name, claimed, key) = split_key(rest)?;
        let seed = ed25519_key(&key)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| KeyError::Malformed("invalid Ed25519 seed"))?;
        let signer = Self::from_pair(name, pair)?;
        if signer.verifier.key_id != claimed {
            return Err(KeyError::WrongKeyId {
                claimed,
                computed: signer.verifier.key_id,
            });
        }
        Ok(signer)
    }

    /// Takes an Ed25519 key from a PKCS#8 document (v1 as OpenSSL writes
    /// it, or v2 with the public key) and signs under `name`.
    pub fn from_pkcs8(name: &str, der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| KeyError::Malformed("not an Ed25519 PKCS#8 private key"))?;
        Self::from_pair(name, pair)
    }

    /// Takes a PEM `PRIVATE KEY` block (PKCS#8) and signs under `name`.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8(name, &pem_decode(pem)?)
    }

    /// A fresh key from the system's secure random source, with its
    /// PKCS#8 document for storage.
    pub fn generate(name: &str) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Malformed("key generation failed"))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(name, &der)?, der))
    }

    fn from_pair(name: &str, pair: Ed25519KeyPair) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::Malformed("invalid key name"));
        }
        let public_key: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Malformed("public key length"))?;
        Ok(SigningKey {
            name: name.to_string(),
            verifier: VerifierKey::named(name, public_key),
            pair,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }
}

impl NoteSigner for SigningKey {
    fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.pair.sign(text).as_ref().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.verifier)
    }
}

/// Wraps a PKCS#8 document in a PEM `PRIVATE KEY` block.
pub fn pem_encode(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// Extracts the PKCS#8 document from a PEM `PRIVATE KEY` block.
pub fn pem_decode(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(KeyError::Malformed("not a PEM PRIVATE KEY block"))?;
    let b64: String = body.split_whitespace().collect();
    BASE64
        .decode(b64)
        .map_err(|_| KeyError::Malformed("PEM body is not base64"))
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Name of the signing key.
    pub name: String,
    /// ID of the signing key.
    pub key_id: u32,
    /// The signature proper, without the key ID prefix.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, newline included.
    pub fn line(&self) -> String {
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }

    fn parse(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::Malformed(
                "signature line does not start with an em dash",
            ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line without a signature"))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::Malformed("invalid key name on a signature line"));
        }
        let blob = BASE64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            signature: blob[4..].to_vec(),
        })
    }
}

/// A signed note: text and signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c < ' ' && c != '\n')
}

impl Note {
    /// An unsigned note over `text`, which must be non-empty UTF-8 that ends
    /// in a newline and holds no control characters but newlines.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        if text.is_empty() || !text.ends_with('\n') || has_control_characters(text) {
            return Err(NoteError::BadText);
        }
        Ok(Note {
            text: text.to_string(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note without checking any signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::Malformed("note too large"));
        }
        let msg = std::str::from_utf8(bytes).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if has_control_characters(msg) {
            return Err(NoteError::Malformed("control character"));
        }
        let split = msg
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        let sigs = sigs.strip_suffix('\n').ok_or(NoteError::Malformed(
            "signature block does not end in a newline",
        ))?;
        let signatures: Vec<NoteSignature> = sigs
            .split('\n')
            .map(NoteSignature::parse)
            .collect::<Result<_, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds `key`'s signature after the existing ones, replacing an earlier
    /// signature by the same key. The signature is verified with the key's
    /// verifier key first: a note never carries a line its own key rejects.
    pub fn sign<K: NoteSigner + ?Sized>(&mut self, key: &K) -> Result<(), NoteError> {
        let verifier = key.verifier_key();
        let failed = |reason: String| NoteError::Signer {
            key: verifier.to_string(),
            reason,
        };
        let signature = key.sign_text(self.text.as_bytes()).map_err(failed)?;
        if !verifier.verify(self.text.as_bytes(), &signature) {
            return Err(failed(
                "its signature does not verify with its verifier key".into(),
            ));
        }
        self.signatures
            .retain(|s| !(s.name == verifier.name && s.key_id == verifier.key_id));
        self.signatures.push(NoteSignature {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
            signature,
        });
        Ok(())
    }

    /// Checks the signatures against `keys` and returns the keys that
    /// signed. Unknown keys are ignored; a bad signature by a known key, or
    /// no signature by any known key, rejects the note.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut signed: Vec<&VerifierKey> = Vec::new();
        for sig in &self.signatures {
            let Some(key) = keys
                .iter()
                .find(|k| k.name == sig.name && k.key_id == sig.key_id)
            else {
                continue;
            };
            if !key.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !signed.contains(&key) {
                signed.push(key);
            }
        }
        if signed.is_empty() {
            let names: Vec<&str> = self.signatures.iter().map(|s| s.name.as_str()).collect();
            return Err(NoteError::NoTrustedSignature {
                signers: names.join(", "),
            });
        }
        Ok(signed)
    }

    /// The note's bytes: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.line());
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_notes_its_verifier_accepts() {
        let (key, der) = SigningKey::generate("vault.example/log").expect("generate");
        let again = SigningKey::from_pem("vault.example/log", &pem_encode(&der)).expect("pem");
        assert_eq!(again.verifier_key(), key.verifier_key());
        let mut note = Note::new("hello\n").expect("text");
        note.sign(&key).expect("sign");
        let parsed = Note::parse(&note.to_bytes()).expect("parse");
        let keys = [VerifierKey::parse(&key.verifier_key().to_string()).expect("vkey")];
        assert_eq!(parsed.verify(&keys).expect("verify").len(), 1);
    }

    #[test]
    fn note_text_must_end_in_newline_without_control_characters() {
        assert_eq!(Note::new("no newline"), Err(NoteError::BadText));
        assert_eq!(Note::new("tab\there\n"), Err(NoteError::BadText));
        assert_eq!(Note::new(""), Err(NoteError::BadText));
    }

    #[test]
    fn signing_twice_with_one_key_keeps_one_line() {
        let (key, _) = SigningKey::generate("a").expect("generate");
        let mut note = Note::new("x\n").expect("text");
        note.sign(&key).expect("sign");
        note.sign(&key).expect("sign");
        assert_eq!(note.signatures().len(), 1);
    }

    /// A token that signs with another key than the public key it shows.
    struct Impostor {
        shown: VerifierKey,
        actual: SigningKey,
    }

    impl NoteSigner for Impostor {
        fn verifier_key(&self) -> &VerifierKey {
            &self.shown
        }
        fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, String> {
            self.actual.sign_text(text)
        }
    }

    #[test]
    fn a_signature_its_own_verifier_key_rejects_is_refused() {
        let (shown, _) = SigningKey::generate("a").expect("generate");
        let (actual, _) = SigningKey::generate("a").expect("generate");
        let impostor = Impostor {
            shown: shown.verifier_key().clone(),
            actual,
        };
        let mut note = Note::new("x\n").expect("text");
        let error = note.sign(&impostor).expect_err("refused");
        assert!(matches!(error, NoteError::Signer { .. }), "{error}");
        assert!(note.signatures().is_empty());
    }

    struct Unplugged(VerifierKey);

    impl NoteSigner for Unplugged {
        fn verifier_key(&self) -> &VerifierKey {
            &self.0
        }
        fn sign_text(&self, _: &[u8]) -> Result<Vec<u8>, String> {
            Err("token removed".into())
        }
    }

    #[test]
    fn a_failing_signer_names_its_key_and_reason() {
        let (key, _) = SigningKey::generate("a").expect("generate");
        let mut note = Note::new("x\n").expect("text");
        let error = note
            .sign(&Unplugged(key.verifier_key().clone()))
            .expect_err("failed");
        let message = error.to_string();
        assert!(message.contains("token removed"), "{message}");
        assert!(
            message.contains(&key.verifier_key().to_string()),
            "{message}"
        );
    }
}
