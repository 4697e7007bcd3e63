//! `SignerService` on a real gRPC server bound to port 0, with the
//! signer's own file: statuses for good, malformed and forking requests,
//! and the record of what it signed.

use evault_core::{Integrator, SigningKey, VerifierKey, leaf_hash, open_checkpoint};
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::{
    GetSignedHeadRequest, GetSignedHeadResponse, GetVerifierKeysRequest, SignCheckpointRequest,
    TreeHead,
};
use evault_signer::{CheckpointSigner, serve};
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use tonic::Code;

const ORIGIN: &str = "vault.example/grpc-signer";

fn head(size: u64, root: &evault_core::Hash) -> Option<TreeHead> {
    Some(TreeHead {
        size,
        root_hash: root.as_bytes().to_vec(),
    })
}

#[tokio::test]
async fn signer_service_signs_and_refuses_with_precise_statuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let signer = CheckpointSigner::new(
        ORIGIN,
        vec![Box::new(key)],
        SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("store"),
    )
    .expect("signer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = evault_proto::transport::incoming(
        listener,
        evault_proto::guard::ConnectionLimits::default(),
    );
    let server = tokio::spawn(serve(incoming, signer, None, async {
        let _ = stopped.await;
    }));
    let mut client = SignerServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");

    let keys = client
        .get_verifier_keys(GetVerifierKeysRequest {
            origin: ORIGIN.into(),
        })
        .await
        .expect("keys")
        .into_inner()
        .verifier_keys;
    let trusted = [VerifierKey::parse(&keys[0]).expect("vkey")];
    let missing = client
        .get_verifier_keys(GetVerifierKeysRequest {
            origin: "other".into(),
        })
        .await
        .expect_err("unknown origin");
    assert_eq!(missing.code(), Code::NotFound);
    let reader = client.clone();
    let signed_head = |origin: &str| {
        let mut client = reader.clone();
        let request = GetSignedHeadRequest {
            origin: origin.into(),
        };
        async move { client.get_signed_head(request).await }
    };
    assert_eq!(
        signed_head(ORIGIN)
            .await
            .expect("never signed")
            .into_inner(),
        GetSignedHeadResponse::default(),
        "nothing signed yet: no head, no checkpoint"
    );

    let mut tree = Integrator::new();
    let empty = tree.root();
    tree.integrate((0..5u32).map(|i| leaf_hash(&i.to_be_bytes())));
    let five = tree.root();
    let note = client
        .sign_checkpoint(SignCheckpointRequest {
            origin: ORIGIN.into(),
            old_head: head(0, &empty),
            new_head: head(5, &five),
            consistency_proof: vec![],
        })
        .await
        .expect("sign")
        .into_inner()
        .checkpoint;
    let cp = open_checkpoint(&note, &trusted, Some(ORIGIN))
        .expect("verifies")
        .checkpoint;
    assert_eq!((cp.size, cp.root), (5, five));

    let bad_root = client
        .sign_checkpoint(SignCheckpointRequest {
            origin: ORIGIN.into(),
            old_head: head(5, &five),
            new_head: Some(TreeHead {
                size: 6,
                root_hash: vec![1; 31],
            }),
            consistency_proof: vec![],
        })
        .await
        .expect_err("malformed");
    assert_eq!(bad_root.code(), Code::InvalidArgument);
    assert!(
        bad_root.message().contains("new_head.root_hash"),
        "{}",
        bad_root.message()
    );

    let no_head = client
        .sign_checkpoint(SignCheckpointRequest {
            origin: ORIGIN.into(),
            ..Default::default()
        })
        .await
        .expect_err("missing head");
    assert_eq!(no_head.code(), Code::InvalidArgument);
    assert!(
        no_head.message().contains("old_head"),
        "{}",
        no_head.message()
    );

    let fork = client
        .sign_checkpoint(SignCheckpointRequest {
            origin: ORIGIN.into(),
            old_head: head(5, &five),
            new_head: head(5, &leaf_hash(b"another root")),
            consistency_proof: vec![],
        })
        .await
        .expect_err("fork");
    assert_eq!(fork.code(), Code::FailedPrecondition);

    let rollback = client
        .sign_checkpoint(SignCheckpointRequest {
            origin: ORIGIN.into(),
            old_head: head(5, &five),
            new_head: head(0, &empty),
            consistency_proof: vec![],
        })
        .await
        .expect_err("rollback");
    assert_eq!(rollback.code(), Code::FailedPrecondition);

    // The record is the last head signed, whatever was refused since.
    assert_eq!(
        signed_head(ORIGIN).await.expect("signed").into_inner(),
        GetSignedHeadResponse {
            head: head(5, &five),
            checkpoint: note,
        }
    );
    let unknown = signed_head("other").await.expect_err("unknown origin");
    assert_eq!(unknown.code(), Code::NotFound);
    let empty_origin = signed_head("").await.expect_err("no origin");
    assert_eq!(empty_origin.code(), Code::InvalidArgument);
    assert!(
        empty_origin.message().contains("origin"),
        "{}",
        empty_origin.message()
    );

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
