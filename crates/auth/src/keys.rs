//! The verifying keys of a JWKS, each bound to the one algorithm it may
//! verify.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// The algorithms accepted. Every other one (`none`, every HS*, PS*,
/// ES384, ...) is refused before a key is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, by an RSA key.
    Rs256,
    /// ECDSA with SHA-256, by a P-256 key.
    Es256,
    /// Ed25519, by an OKP Ed25519 key.
    EdDsa,
}

impl Alg {
    /// The algorithm a token's header or a JWK names, if accepted.
    pub(crate) fn from_name(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// One key of the set.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    /// The only algorithm this key verifies: fixed by its type and curve,
    /// and equal to the JWK's `alg` when it has one.
    pub(crate) alg: Alg,
    pub(crate) key: DecodingKey,
}

/// The usable keys of a JWKS document.
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// RSA moduli accepted, in bits: under 2048 is too weak, over 8192 is
/// more than the RSA implementation verifies.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The members of a JWK this crate reads.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// The usable keys of the JWKS `document`. Keys this crate cannot use
    /// (encryption keys, symmetric keys, other curves or algorithms, a
    /// JWK `alg` disagreeing with the key's type, weak RSA) are skipped
    /// and logged at debug; a document without one usable key is an
    /// error, so that a wrong file or URL is noticed.
    pub(crate) fn parse(document: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for (at, jwk) in document.keys.into_iter().enumerate() {
            let kid = jwk.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            match serde_json::from_value::<Jwk>(jwk)
                .map_err(|e| e.to_string())
                .and_then(verifying_key)
            {
                Ok(key) => keys.push(key),
                Err(reason) => tracing::debug!(key = at, ?kid, reason, "JWKS key skipped"),
            }
        }
        if keys.is_empty() {
            return Err("no usable key in the JWKS (RS256, ES256 or EdDSA signing keys)".into());
        }
        Ok(KeySet { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key has id `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys with id `kid`.
    pub(crate) fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a VerifyingKey> {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    /// Every key verifying `alg`.
    pub(crate) fn for_alg(&self, alg: Alg) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter().filter(move |k| k.alg == alg)
    }
}

fn verifying_key(jwk: Jwk) -> Result<VerifyingKey, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (use)".into());
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("not a verification key (key_ops)".into());
    }
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = trim_zeros(member(&jwk.n, "n")?);
            let e = trim_zeros(member(&jwk.e, "e")?);
            let bits = n
                .first()
                .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
            if !RSA_BITS.contains(&bits) {
                return Err(format!("RSA modulus of {bits} bits"));
            }
            if e.is_empty() {
                return Err("RSA exponent is zero".into());
            }
            (Alg::Rs256, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        ("EC", Some("P-256")) => {
            let x = member(&jwk.x, "x")?;
            let y = member(&jwk.y, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are not 32 bytes".into());
            }
            let point = [&[0x04][..], &x, &y].concat();
            (Alg::Es256, DecodingKey::from_ec_der(&point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = member(&jwk.x, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".into());
            }
            (Alg::EdDsa, DecodingKey::from_ed_der(&x))
        }
        (kty, crv) => return Err(format!("unsupported key type {kty} {crv:?}")),
    };
    if let Some(named) = &jwk.alg {
        if Alg::from_name(named) != Some(alg) {
            return Err(format!("alg {named} does not fit the key type"));
        }
    }
    Ok(VerifyingKey {
        kid: jwk.kid,
        alg,
        key,
    })
}

/// A base64url member of a JWK, decoded (padding tolerated).
fn member(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.as_deref().ok_or_else(|| format!("no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))
}

fn trim_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed25519(kid: &str) -> serde_json::Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": kid })
    }

    fn parse(keys: serde_json::Value) -> Result<KeySet, String> {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn keys_are_bound_to_the_algorithm_of_their_type() {
        let rsa = json!({ "kty": "RSA", "n": b64(&[0xc1; 256]), "e": "AQAB", "kid": "r" });
        let ec = json!({
            "kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]), "kid": "e",
        });
        let set = parse(json!([rsa, ec, ed25519("d")])).expect("keys");
        let alg = |kid| set.with_kid(kid).map(|k| k.alg).collect::<Vec<_>>();
        assert_eq!(alg("r"), [Alg::Rs256]);
        assert_eq!(alg("e"), [Alg::Es256]);
        assert_eq!(alg("d"), [Alg::EdDsa]);
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let skipped = json!([
            { "kty": "oct", "k": b64(b"secret"), "kid": "hmac" },
            { "kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48]), "kid": "p384" },
            { "kty": "RSA", "n": b64(&[0xc1; 128]), "e": "AQAB", "kid": "rsa1024" },
            { "kty": "OKP", "crv": "X25519", "x": b64(&[7; 32]), "kid": "x25519" },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "enc", "use": "enc" },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "sign-only", "key_ops": ["sign"] },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "es", "alg": "ES256" },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 31]), "kid": "short" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "nothing" },
            "not even an object",
        ]);
        let mut keys = skipped.as_array().expect("array").clone();
        keys.push(ed25519("good"));
        let set = parse(json!(keys)).expect("the good key");
        assert_eq!(set.len(), 1);
        assert!(set.has_kid("good"));
    }

    #[test]
    fn a_jwks_without_usable_keys_is_an_error() {
        assert!(parse(json!([])).is_err());
        assert!(parse(json!([{ "kty": "oct", "k": "c2VjcmV0" }])).is_err());
        assert!(KeySet::parse(b"{\"keys\": 3}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }
}
