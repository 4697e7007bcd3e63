//! Signing keys that never leave a PKCS#11 token: an HSM, a cloud KMS's
//! PKCS#11 library, or SoftHSM2.
//!
//! The signer loads the token's module, logs in as the user with a PIN
//! read from a file, and finds each key by its label: an Ed25519 private
//! key (`CKK_EC_EDWARDS` on the Ed25519 curve) that the token marks
//! sensitive and not extractable. A key the token would hand out is
//! refused: the point of the token is that nobody, the operators included,
//! can copy the log's key. The verifier key comes from the token's public
//! key object of the same label (`CKA_EC_POINT`), or from the private
//! key's `CKA_PUBLIC_KEY_INFO`, and one signature made at start must verify
//! with it before the key is used.
//!
//! Signing is `C_Sign` with `CKM_EDDSA` (pure Ed25519). A session the token
//! closed (a network HSM restarted, a token re-inserted) is reopened and
//! logged in again once before a signature fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use evault_core::{NoteSigner, VerifierKey};

/// Where the keys are: the module, the token, and how to log in.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The file holding the user PIN (one line; a final newline is
    /// ignored).
    pub pin_file: PathBuf,
}

/// Why a token or one of its keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The PIN file could not be read or is empty.
    #[error("PIN file {path}: {reason}")]
    Pin {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {path}: {source}")]
    Module {
        /// The module.
        path: PathBuf,
        /// The error.
        source: CkError,
    },
    /// No initialised token has the label.
    #[error("no PKCS#11 token labelled {token:?} (tokens: {found})")]
    NoToken {
        /// The label asked for.
        token: String,
        /// The labels found, for the message.
        found: String,
    },
    /// A call to the token failed.
    #[error("token {token:?}: {what}: {source}")]
    Call {
        /// The token.
        token: String,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: CkError,
    },
    /// The key is missing, ambiguous or unfit to be the log's key.
    #[error("token {token:?}, key {label:?}: {reason}")]
    Key {
        /// The token.
        token: String,
        /// The key's label.
        label: String,
        /// What is wrong.
        reason: String,
    },
}

/// One module is initialised once per process (`C_Initialize` refuses a
/// second call), and every token of it shares that context.
fn context(module: &Path) -> Result<Pkcs11, TokenError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let failed = |source| TokenError::Module {
        path: module.to_path_buf(),
        source,
    };
    let mut contexts = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(context) = contexts.get(module) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(module).map_err(failed)?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e)),
    }
    contexts.insert(module.to_path_buf(), context.clone());
    Ok(context)
}

fn read_pin(path: &Path) -> Result<AuthPin, TokenError> {
    let failed = |reason: String| TokenError::Pin {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(failed("empty".into()));
    }
    Ok(AuthPin::from(pin.to_string()))
}

/// A logged-in session on one token, shared by the token's keys.
struct TokenSession {
    context: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    session: Mutex<Session>,
}

impl TokenSession {
    fn open(config: &TokenConfig) -> Result<Arc<Self>, TokenError> {
        let pin = read_pin(&config.pin_file)?;
        let context = context(&config.module)?;
        let call = |what, source| TokenError::Call {
            token: config.token.clone(),
            what,
            source,
        };
        let slots = context
            .get_slots_with_initialized_token()
            .map_err(|e| call("listing slots", e))?;
        let mut found = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let info = context
                .get_token_info(slot)
                .map_err(|e| call("reading token info", e))?;
            let label = info.label().trim_end().to_string();
            if label == config.token {
                chosen = Some(slot);
                break;
            }
            found.push(label);
        }
        let slot = chosen.ok_or_else(|| TokenError::NoToken {
            token: config.token.clone(),
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        })?;
        let session = Self::login(&context, slot, &pin).map_err(|e| call("logging in", e))?;
        Ok(Arc::new(TokenSession {
            context,
            slot,
            label: config.token.clone(),
            pin,
            session: Mutex::new(session),
        }))
    }

    /// A read-only session is enough to sign; logging in is per token and
    /// application, so a second session finds the user logged in already.
    fn login(context: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<Session, CkError> {
        let session = context.open_ro_session(slot)?;
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    fn key_error(&self, label: &str, reason: impl Into<String>) -> TokenError {
        TokenError::Key {
            token: self.label.clone(),
            label: label.to_string(),
            reason: reason.into(),
        }
    }

    fn call(&self, what: &'static str) -> impl Fn(CkError) -> TokenError + '_ {
        move |source| TokenError::Call {
            token: self.label.clone(),
            what,
            source,
        }
    }

    /// The one object of `class` labelled `label` that is an EdDSA key.
    fn find(
        &self,
        session: &Session,
        class: ObjectClass,
        label: &str,
    ) -> Result<Option<ObjectHandle>, TokenError> {
        let template = [
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let found = session
            .find_objects(&template)
            .map_err(self.call("finding keys"))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(self.key_error(
                label,
                format!(
                    "{} keys carry this label; labels must be unique",
                    many.len()
                ),
            )),
        }
    }
}

/// A token's Ed25519 private key, used by label.
pub struct TokenKey {
    token: Arc<TokenSession>,
    label: String,
    handle: Mutex<ObjectHandle>,
    verifier: VerifierKey,
}

/// The keys `labels` on the token `config` names, each signing under
/// `name` (the log's origin), in the order given.
pub fn open_token_keys(
    config: &TokenConfig,
    labels: &[String],
    name: &str,
) -> Result<Vec<TokenKey>, TokenError> {
    let token = TokenSession::open(config)?;
    labels
        .iter()
        .map(|label| TokenKey::open(Arc::clone(&token), label, name))
        .collect()
}

impl TokenKey {
    fn open(token: Arc<TokenSession>, label: &str, name: &str) -> Result<Self, TokenError> {
        let session = token
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let private = token
            .find(&session, ObjectClass::PRIVATE_KEY, label)?
            .ok_or_else(|| token.key_error(label, "no Ed25519 private key has this label"))?;
        let attributes = session
            .get_attributes(
                private,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Sign,
                    AttributeType::EcParams,
                ],
            )
            .map_err(token.call("reading the private key's attributes"))?;
        let mut sensitive = false;
        let mut extractable = true;
        let mut can_sign = false;
        for attribute in &attributes {
            match attribute {
                Attribute::Sensitive(v) => sensitive = *v,
                Attribute::Extractable(v) => extractable = *v,
                Attribute::Sign(v) => can_sign = *v,
                Attribute::EcParams(params) if !is_ed25519_curve(params) => {
                    return Err(token.key_error(label, "not on the Ed25519 curve"));
                }
                _ => {}
            }
        }
        if !sensitive || extractable {
            return Err(token.key_error(
                label,
                "the token would let the private key be read out (it must be \
                 CKA_SENSITIVE and not CKA_EXTRACTABLE)",
            ));
        }
        if !can_sign {
            return Err(token.key_error(label, "the key may not sign (CKA_SIGN is false)"));
        }
        let public_key = public_key(&token, &session, private, label)?;
        drop(session);
        let verifier = VerifierKey::from_public_key(name, public_key)
            .map_err(|e| token.key_error(label, e.to_string()))?;
        let key = TokenKey {
            token,
            label: label.to_string(),
            handle: Mutex::new(private),
            verifier,
        };
        // The public key object could belong to another key pair: one
        // signature at start proves the pair before the log relies on it.
        let probe = b"evault key check\n";
        let signature = key
            .sign_text(probe)
            .map_err(|e| key.token.key_error(label, e))?;
        if !key.verifier.verify(probe, &signature) {
            return Err(key.token.key_error(
                label,
                "its signature does not verify with the public key stored beside it",
            ));
        }
        Ok(key)
    }

    /// The key's label on the token.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn sign_once(&self, session: &Session, text: &[u8]) -> Result<Vec<u8>, CkError> {
        let handle = *self
            .handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        session.sign(
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            handle,
            text,
        )
    }

    /// Opens a new session in place of one the token dropped, and finds
    /// the key again (object handles need not survive a session).
    fn reopen(&self, session: &mut Session) -> Result<(), String> {
        let token = &self.token;
        *session = TokenSession::login(&token.context, token.slot, &token.pin)
            .map_err(|e| format!("reopening the session: {e}"))?;
        let handle = token
            .find(session, ObjectClass::PRIVATE_KEY, &self.label)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the key is gone from the token".to_string())?;
        *self
            .handle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = handle;
        Ok(())
    }
}

/// Failures after which a fresh session may succeed.
fn session_lost(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    )
}

impl NoteSigner for TokenKey {
    fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, String> {
        let mut session = self
            .token
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let signature = match self.sign_once(&session, text) {
            Err(e) if session_lost(&e) => {
                tracing::warn!(token = %self.token.label, key = %self.label, error = %e,
                    "the token dropped the signing session; opening a new one");
                self.reopen(&mut session)?;
                self.sign_once(&session, text)
            }
            other => other,
        }
        .map_err(|e| format!("token {:?}, key {:?}: {e}", self.token.label, self.label))?;
        if signature.len() != 64 {
            return Err(format!(
                "token {:?}, key {:?}: a {}-byte signature is not Ed25519",
                self.token.label,
                self.label,
                signature.len()
            ));
        }
        Ok(signature)
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenKey({:?}/{:?}: {})",
            self.token.label, self.label, self.verifier
        )
    }
}

/// `CKA_EC_PARAMS` of Ed25519: the curve's OID 1.3.101.112, or the
/// printable string `edwards25519` that PKCS#11 3.0 also allows.
fn is_ed25519_curve(params: &[u8]) -> bool {
    const OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const NAME: &[u8] = b"\x13\x0cedwards25519";
    params == OID || params == NAME
}

/// The 32-byte public key of the pair: `CKA_EC_POINT` of the public key
/// object with the same label (a DER OCTET STRING, or the raw 32 bytes
/// some tokens store), else `CKA_PUBLIC_KEY_INFO` of the private key.
fn public_key(
    token: &TokenSession,
    session: &Session,
    private: ObjectHandle,
    label: &str,
) -> Result<[u8; 32], TokenError> {
    if let Some(public) = token.find(session, ObjectClass::PUBLIC_KEY, label)? {
        let attributes = session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(token.call("reading the public key"))?;
        for attribute in attributes {
            if let Attribute::EcPoint(point) = attribute {
                let raw = match point.as_slice() {
                    [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
                    raw if raw.len() == 32 => raw,
                    _ => {
                        return Err(token.key_error(label, "CKA_EC_POINT is not an Ed25519 key"));
                    }
                };
                return Ok(raw.try_into().expect("32 bytes"));
            }
        }
    }
    let attributes = session
        .get_attributes(private, &[AttributeType::PublicKeyInfo])
        .map_err(token.call("reading the public key info"))?;
    for attribute in attributes {
        if let Attribute::PublicKeyInfo(spki) = attribute {
            // SubjectPublicKeyInfo of Ed25519 (RFC 8410): a fixed 12-byte
            // prefix, then the 32-byte key.
            const PREFIX: &[u8] = &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            if let Some(raw) = spki.strip_prefix(PREFIX).filter(|r| r.len() == 32) {
                return Ok(raw.try_into().expect("32 bytes"));
            }
        }
    }
    Err(token.key_error(
        label,
        "no public key: neither a public key object with this label nor CKA_PUBLIC_KEY_INFO",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_curve_parameters_are_recognised_in_both_forms() {
        assert!(is_ed25519_curve(&[0x06, 0x03, 0x2b, 0x65, 0x70]));
        assert!(is_ed25519_curve(b"\x13\x0cedwards25519"));
        // Ed448: 1.3.101.113, and its name.
        assert!(!is_ed25519_curve(&[0x06, 0x03, 0x2b, 0x65, 0x71]));
        assert!(!is_ed25519_curve(b"\x13\x0aedwards448"));
    }

    #[test]
    fn an_empty_pin_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pin");
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(read_pin(&path), Err(TokenError::Pin { .. })));
        std::fs::write(&path, "1234\n").expect("write");
        assert!(read_pin(&path).is_ok());
    }
}
