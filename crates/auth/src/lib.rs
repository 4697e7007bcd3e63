//! Caller authentication: the one door every role that faces callers
//! (ingest, gateway, `evault up`) puts in front of its services.
//!
//! A caller presents a JWT bearer token from the organisation's identity
//! provider. [`JwtVerifier`] checks it against the provider's JWKS (a file
//! or a URL, cached, refreshed periodically and when a token names an
//! unknown key): RS256, ES256 and EdDSA only, the key's type bound to the
//! algorithm, `iss`, `aud`, `exp`, `nbf` and `sub` required to be right.
//! The token's `sub` becomes the [`Principal`]'s name, its `scope`/`scp`
//! claim the principal's [`Scope`]s. [`Policy`] says which scope each path
//! needs, and [`AuthLayer`] enforces it from the request's headers alone,
//! before any of its body is read, handing the principal to the handler in
//! the request's extensions.
//!
//! [`LocalIssuer`] is the identity provider `evault up` runs when none is
//! named: a key and a JWKS file in the data directory. Its tokens are
//! verified exactly as any provider's: there is no bypass.
//!
//! This crate does not issue tokens for real deployments, does not speak
//! OAuth or OpenID Connect discovery (it is given the JWKS and the issuer),
//! does not authenticate roles to each other (that is mutual TLS), does
//! not rate-limit, and does not record refusals in the audit log: it logs
//! them with `tracing` and counts them per principal, code and reason
//! ([`Denials`]) for the caller of the layer to record.

mod denials;
mod issuer;
mod keys;
mod layer;
mod policy;
mod principal;
mod ttl;
mod verifier;

pub use denials::{DenialCount, DenialWindow, Denials, MAX_KINDS, OTHER_REASONS};
pub use issuer::LocalIssuer;
pub use layer::{AuthLayer, AuthService, bearer_token};
pub use policy::{Access, Policy};
pub use principal::{Principal, Scope, require};
pub use ttl::parse_ttl;
pub use verifier::{JwksSource, JwtConfig, JwtVerifier, Refresh};

/// The largest token accepted, in bytes, checked before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
