//! The vault's protobuf contracts, package `evault.v1`, as Rust code.
//!
//! This crate is the wire and nothing else: the prost messages and the
//! tonic clients and servers of `IngestService`, `TreeService`,
//! `SequencerService` and `SignerService`, generated from `proto/evault/v1/`
//! at compile time (see `docs/protobuf.md`), and the HTTP/2 settings every
//! role's servers and clients use ([`transport`]), with mutual TLS between
//! the roles ([`tls`]), and calls to whichever replica of a role answers
//! ([`failover`]), carrying each call's trace context ([`telemetry`]). The documentation of every type and field is that
//! of the `.proto` files.
//!
//! Every server also gets what keeps a hostile client from starving or
//! blinding it: a codec that answers a request that does not decode with
//! `INVALID_ARGUMENT` ([`codec`]), connections bounded in number, time to
//! start and silence ([`guard`]), and a bound on request bytes held at
//! once ([`inflight`]).
//!
//! It does not validate, convert or interpret anything: a generated message
//! may hold a 7-byte "hash" or an empty origin. Domain crates never see these
//! types beyond their gRPC edge, where they convert them into their own
//! types and reject bad input with a field-precise `INVALID_ARGUMENT`.

pub mod codec;
pub mod failover;
pub mod guard;
pub mod inflight;
#[cfg(test)]
mod stub;
pub mod telemetry;
pub mod tls;
pub mod transport;

/// The encoded `FileDescriptorSet` of the public services (`IngestService`,
/// `EvidenceService`, `TreeService`) and what they import, for gRPC
/// reflection; internal services are left out.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/public_descriptors.bin"));

/// The public services, by full name.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "evault.v1.IngestService",
    "evault.v1.EvidenceService",
    "evault.v1.TreeService",
];

/// Messages and services of the protobuf package `evault.v1`.
pub mod v1 {
    tonic::include_proto!("evault.v1");
    // The servers, generated apart with the vault's codec (`build.rs`).
    include!(concat!(env!("OUT_DIR"), "/servers/evault.v1.rs"));
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use prost::Message;
    use tonic::server::NamedService;

    use super::v1;

    /// Encodes `message`, decodes the bytes, and checks nothing was lost.
    fn assert_round_trips<M: Message + Default + PartialEq + Debug>(message: &M) {
        let decoded = M::decode(message.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(&decoded, message);
    }

    #[test]
    fn receipt_round_trips_through_the_wire_encoding() {
        assert_round_trips(&v1::Receipt {
            index: 257,
            entry: vec![1, 0xff, 0, 7],
            inclusion_proof: vec![vec![0xaa; 32], vec![0xbb; 32], vec![0xcc; 32]],
            checkpoint: b"vault.example.com/evidence\n258\nAAAA\n\n\xe2\x80\x94 key sig\n".to_vec(),
        });
    }

    #[test]
    fn sequence_request_round_trips_in_order() {
        assert_round_trips(&v1::SequenceRequest {
            origin: "vault.example.com/evidence".to_owned(),
            entries: (0..3u8)
                .map(|i| v1::SequenceEntry {
                    entry: vec![1, i, i],
                    dedup_key: vec![i; 32],
                })
                .collect(),
        });
    }

    #[test]
    fn empty_uploaded_content_is_not_confused_with_no_upload() {
        for content in [None, Some(Vec::new()), Some(b"evidence".to_vec())] {
            assert_round_trips(&v1::EvidenceStatement {
                content,
                ..Default::default()
            });
        }
    }

    #[test]
    fn services_carry_their_protobuf_names() {
        use v1::{
            ingest_service_server::IngestServiceServer,
            sequencer_service_server::SequencerServiceServer,
            signer_service_server::SignerServiceServer, tree_service_server::TreeServiceServer,
        };
        assert_eq!(
            <IngestServiceServer<()> as NamedService>::NAME,
            "evault.v1.IngestService"
        );
        assert_eq!(
            <TreeServiceServer<()> as NamedService>::NAME,
            "evault.v1.TreeService"
        );
        assert_eq!(
            <SequencerServiceServer<()> as NamedService>::NAME,
            "evault.v1.SequencerService"
        );
        assert_eq!(
            <SignerServiceServer<()> as NamedService>::NAME,
            "evault.v1.SignerService"
        );
    }
}
