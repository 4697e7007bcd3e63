//! The local issuer's tokens go through the same verifier as any identity
//! provider's.

use std::time::Duration;

use evault_auth::{JwtVerifier, LocalIssuer, Principal, Scope};
use tonic::Code;

#[tokio::test]
async fn local_issuer_tokens_verify_through_the_jwt_verifier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = LocalIssuer::open_or_create(dir.path()).expect("issuer");
    let token = issuer
        .mint(
            "dev",
            &[Scope::Admin, Scope::Append, Scope::Append],
            Duration::from_secs(600),
        )
        .expect("token");
    let verifier = JwtVerifier::start(LocalIssuer::config(dir.path()))
        .await
        .expect("verifier");
    assert_eq!(
        verifier.verify(&token).await.expect("accepted"),
        Principal::new("dev", [Scope::Append, Scope::Admin])
    );
}

#[tokio::test]
async fn a_reopened_issuer_mints_tokens_the_running_verifier_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    LocalIssuer::open_or_create(dir.path()).expect("issuer");
    let verifier = JwtVerifier::start(LocalIssuer::config(dir.path()))
        .await
        .expect("verifier");
    let reopened = LocalIssuer::open(dir.path()).expect("issuer");
    let token = reopened
        .mint("ci", &[Scope::Read], Duration::from_secs(60))
        .expect("token");
    assert_eq!(verifier.verify(&token).await.expect("accepted").name, "ci");
}

#[tokio::test]
async fn another_data_directory_issuer_is_a_stranger() {
    let ours = tempfile::tempdir().expect("tempdir");
    let theirs = tempfile::tempdir().expect("tempdir");
    LocalIssuer::open_or_create(ours.path()).expect("issuer");
    let stranger = LocalIssuer::open_or_create(theirs.path()).expect("issuer");
    let verifier = JwtVerifier::start(LocalIssuer::config(ours.path()))
        .await
        .expect("verifier");
    let token = stranger
        .mint("dev", &[Scope::Admin], Duration::from_secs(60))
        .expect("token");
    let refused = verifier.verify(&token).await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "unknown key id");
}
