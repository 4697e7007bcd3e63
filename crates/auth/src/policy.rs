//! Which scope each path needs.

use crate::Scope;

/// What a request to a path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Nothing: no token is read, no principal is set.
    Public,
    /// A verified token holding this scope.
    Require(Scope),
}

/// The vault's access rules, by request path:
///
/// - `/evault.v1.IngestService/*`: [`Scope::Append`];
/// - `/evault.v1.TreeService/*`: public, or [`Scope::Read`] when reads are
///   closed;
/// - `/evault.v1.EvidenceService/GetEvidence`: [`Scope::Read`], even when
///   reads are public (the log is public, the evidence bytes are not);
///   any other method of `EvidenceService` (`EraseEvidence`):
///   [`Scope::Admin`];
/// - `/grpc.health.v1.Health/*` and `/grpc.reflection.*`: public;
/// - any other gRPC service: [`Scope::Admin`];
/// - any other path (the tile API, `/checkpoint`, `/tile/...`): public,
///   or [`Scope::Read`] when reads are closed.
///
/// A path is a gRPC one when it is `/<service>/<method>` and the service
/// name is package-qualified (`a.b.Service`: dot-separated identifiers),
/// which no path of the tile API is. An unknown gRPC service needs the
/// admin scope, so that a service added later is closed until its rule is
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    public_reads: bool,
}

impl Policy {
    /// The rules, with reads public (transparency, the default) or closed.
    pub fn new(public_reads: bool) -> Policy {
        Policy { public_reads }
    }

    /// What a request to `path` needs.
    pub fn access(&self, path: &str) -> Access {
        let read = if self.public_reads {
            Access::Public
        } else {
            Access::Require(Scope::Read)
        };
        let Some((service, method)) = grpc_method(path) else {
            return read;
        };
        match service {
            "evault.v1.IngestService" => Access::Require(Scope::Append),
            "evault.v1.EvidenceService" if method == "GetEvidence" => Access::Require(Scope::Read),
            "evault.v1.TreeService" => read,
            "grpc.health.v1.Health" => Access::Public,
            _ if service.starts_with("grpc.reflection.") => Access::Public,
            _ => Access::Require(Scope::Admin),
        }
    }
}

/// The service and method a gRPC path names: `a.b.Service` and `Method`
/// in `/a.b.Service/Method`.
fn grpc_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let mut parts = service.split('.');
    let qualified = service.contains('.') && parts.all(is_identifier);
    qualified.then_some((service, method))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_need_the_append_scope_whatever_reads_are() {
        for public_reads in [true, false] {
            let policy = Policy::new(public_reads);
            for path in [
                "/evault.v1.IngestService/Append",
                "/evault.v1.IngestService/AppendStream",
            ] {
                assert_eq!(policy.access(path), Access::Require(Scope::Append));
            }
        }
    }

    #[test]
    fn reads_are_public_unless_closed() {
        let reads = [
            "/evault.v1.TreeService/GetCheckpoint",
            "/evault.v1.TreeService/GetEntries",
            "/checkpoint",
            "/tile/0/000",
            "/tile/entries/x001/234.p/7",
            "/",
            "/index.html",
            "/.well-known/anything/else",
        ];
        for path in reads {
            assert_eq!(Policy::new(true).access(path), Access::Public, "{path}");
            assert_eq!(
                Policy::new(false).access(path),
                Access::Require(Scope::Read),
                "{path}"
            );
        }
    }

    #[test]
    fn evidence_bytes_need_read_and_erasure_admin_whatever_reads_are() {
        for public_reads in [true, false] {
            let policy = Policy::new(public_reads);
            assert_eq!(
                policy.access("/evault.v1.EvidenceService/GetEvidence"),
                Access::Require(Scope::Read)
            );
            assert_eq!(
                policy.access("/evault.v1.EvidenceService/EraseEvidence"),
                Access::Require(Scope::Admin)
            );
        }
    }

    #[test]
    fn health_and_reflection_are_always_public() {
        for public_reads in [true, false] {
            let policy = Policy::new(public_reads);
            for path in [
                "/grpc.health.v1.Health/Check",
                "/grpc.health.v1.Health/Watch",
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ] {
                assert_eq!(policy.access(path), Access::Public, "{path}");
            }
        }
    }

    #[test]
    fn other_grpc_services_need_the_admin_scope() {
        for public_reads in [true, false] {
            let policy = Policy::new(public_reads);
            for path in [
                "/evault.v1.SignerService/SignCheckpoint",
                "/evault.v1.SequencerService/Sequence",
                "/evault.v2.IngestService/Append",
                "/evault.v1.AdminService/Erase",
                "/grpc.healthx.v1.Health/Check",
            ] {
                assert_eq!(policy.access(path), Access::Require(Scope::Admin), "{path}");
            }
        }
    }
}
