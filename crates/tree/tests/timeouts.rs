//! Tree's calls to the signer never wait for ever: a signer that takes a
//! request and never answers (its connection stalled by a real TCP proxy,
//! as a frozen process or a partition behaves) fails the call as
//! unavailable within the call timeout, and the sequencer goes on once the
//! signer answers again.

use evault_core::SigningKey;
use evault_signer::{CheckpointSigner, SignRequest};
use evault_storage::TreeHead;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_test_support::proxy::TcpProxy;
use evault_tree::{PublishError, Publisher, RemoteSigner};

const ORIGIN: &str = "vault.example/timeouts";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_signer_fails_the_call_instead_of_holding_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let signer = CheckpointSigner::new(
        ORIGIN,
        vec![Box::new(key)],
        SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer store"),
    )
    .expect("signer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = evault_proto::transport::incoming(
        listener,
        evault_proto::guard::ConnectionLimits::default(),
    );
    tokio::spawn(evault_signer::serve(
        incoming,
        signer,
        None,
        std::future::pending(),
    ));
    let proxy = TcpProxy::start(addr).await;
    let remote = RemoteSigner::new(&format!("http://{}", proxy.addr()), None).expect("remote");
    assert_eq!(remote.latest(ORIGIN).await.expect("latest"), None);

    proxy.stall();
    let request = SignRequest {
        origin: ORIGIN.into(),
        old: TreeHead::empty(),
        new: TreeHead::empty(),
        proof: vec![],
    };
    let bound = evault_proto::transport::CALL_TIMEOUT * 6;
    let stalled = tokio::time::timeout(bound, remote.sign(request.clone()))
        .await
        .expect("the call returned");
    match stalled {
        Err(PublishError::Unavailable(reason)) => {
            assert!(reason.contains("did not answer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let stalled = tokio::time::timeout(bound, remote.latest(ORIGIN))
        .await
        .expect("the call returned");
    assert!(
        matches!(stalled, Err(PublishError::Unavailable(_))),
        "{stalled:?}"
    );

    proxy.resume();
    let note = remote.sign(request).await.expect("signed once it answers");
    assert!(!note.is_empty());
}
