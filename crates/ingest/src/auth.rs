//! Who is calling: the seam where authentication plugs in.
//!
//! Every write is authenticated; the [`Authenticator`] names the principal
//! that the entry records. The development authenticator checks a bearer
//! token against the one `evault up` writes to its data directory; a
//! JWT/JWKS authenticator replaces it behind the same trait.

use std::path::Path;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal(pub String);

/// Names the principal behind a request, or refuses it.
pub trait Authenticator: Send + Sync + 'static {
    /// The principal of a request with these headers; `UNAUTHENTICATED`
    /// when there is none.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status>;
}

/// The bearer token of a request, from `authorization: Bearer <token>`.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, Status> {
    let header = metadata
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization is not a Bearer token"))
}

/// The development authenticator: one secret token, one principal.
pub struct DevToken {
    token: String,
    principal: Principal,
}

impl DevToken {
    /// Accepts `token` as `principal`.
    pub fn new(token: &str, principal: &str) -> Self {
        DevToken {
            token: token.to_string(),
            principal: Principal(principal.to_string()),
        }
    }

    /// Reads the token from `path` (surrounding white space ignored).
    pub fn from_file(path: &Path, principal: &str) -> std::io::Result<Self> {
        let token = std::fs::read_to_string(path)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} is empty",
                path.display()
            )));
        }
        Ok(Self::new(token, principal))
    }
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for DevToken {
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let token = bearer_token(metadata)?;
        if same(token.as_bytes(), self.token.as_bytes()) {
            Ok(self.principal.clone())
        } else {
            Err(Status::unauthenticated("unknown token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(header: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", header.parse().expect("header"));
        m
    }

    #[test]
    fn dev_token_names_its_principal_and_refuses_others() {
        let auth = DevToken::new("s3cret", "dev");
        assert_eq!(
            auth.authenticate(&with("Bearer s3cret")).expect("accepted"),
            Principal("dev".into())
        );
        for bad in ["Bearer wrong", "Bearer ", "Basic s3cret", "s3cret"] {
            let err = auth.authenticate(&with(bad)).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let err = auth
            .authenticate(&MetadataMap::new())
            .expect_err("no header");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
