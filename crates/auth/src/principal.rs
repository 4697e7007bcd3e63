//! Who a verified caller is and what it may do.

use std::fmt;
use std::str::FromStr;

use tonic::Status;

/// What a caller may do. Tokens carry these as strings in their `scope` or
/// `scp` claim; strings this vault does not know are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Append entries (`IngestService`).
    Append,
    /// Read the log (`TreeService`, the tile API) when reads are closed.
    Read,
    /// Administer the vault (every other gRPC service).
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Append, Scope::Read, Scope::Admin];

    /// The scope as tokens spell it: `evault.append`, `evault.read`,
    /// `evault.admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Append => "evault.append",
            Scope::Read => "evault.read",
            Scope::Admin => "evault.admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?} (evault.append, evault.read, evault.admin)")
            })
    }
}

/// A caller whose token was verified: handlers find it in the request's
/// extensions (`request.extensions().get::<Principal>()`), put there by
/// [`crate::AuthLayer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`, never empty: the name recorded with what the
    /// caller does.
    pub name: String,
    /// Sorted, without duplicates.
    scopes: Vec<Scope>,
}

impl Principal {
    /// A principal named `name` holding `scopes`.
    pub fn new(name: impl Into<String>, scopes: impl IntoIterator<Item = Scope>) -> Principal {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        Principal {
            name: name.into(),
            scopes,
        }
    }

    /// Whether the principal holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The scopes the principal holds, in the order of [`Scope::ALL`].
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

/// `PERMISSION_DENIED` naming the missing scope unless `principal` holds
/// `scope`.
pub fn require(principal: &Principal, scope: Scope) -> Result<(), Status> {
    if principal.has(scope) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!("missing scope {scope}")))
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            assert_eq!(scope.to_string(), scope.as_str());
        }
        assert!("evault.write".parse::<Scope>().is_err());
        assert!("EVAULT.APPEND".parse::<Scope>().is_err());
    }

    #[test]
    fn principal_scopes_are_sorted_and_unique() {
        let principal = Principal::new("alice", [Scope::Admin, Scope::Append, Scope::Admin]);
        assert_eq!(principal.scopes(), &[Scope::Append, Scope::Admin]);
        assert!(principal.has(Scope::Append));
        assert!(!principal.has(Scope::Read));
    }

    #[test]
    fn require_names_the_missing_scope() {
        let principal = Principal::new("alice", [Scope::Read]);
        assert!(require(&principal, Scope::Read).is_ok());
        let refused = require(&principal, Scope::Append).expect_err("refused");
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(refused.message(), "missing scope evault.append");
    }
}
