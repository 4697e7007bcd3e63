//! What checking a caller costs: `JwtVerifier::verify` on RS256, ES256
//! and EdDSA tokens, on a token's first call (parsing, key lookup,
//! signature, claims, scopes) and on the calls after (remembered),
//! beside the bare Ed25519 signature check of the same bytes with ring,
//! measured in the same run. Run with
//! `cargo bench -p evault-auth --bench verify`; figures in
//! docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use evault_auth::{JwksSource, JwtConfig, JwtVerifier};
use evault_test_support::jwks::{AUDIENCE, ISSUER, JwksServer, TestKey, claims};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

/// Distinct tokens per algorithm: more than the verifier remembers.
const FRESH: usize = 5000;

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let idp = JwksServer::start();
    let keys = [
        TestKey::rsa("rsa"),
        TestKey::ec("ec"),
        TestKey::ed25519("ed"),
    ];
    for key in &keys {
        idp.add(key);
    }
    let verifier = runtime
        .block_on(JwtVerifier::start(JwtConfig {
            source: JwksSource::Url(idp.url()),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        }))
        .expect("verifier");
    let mut group = c.benchmark_group("verify");
    for key in &keys {
        // More distinct tokens than the verifier remembers, in turn: every
        // one is checked afresh.
        let fresh: Vec<String> = (0..FRESH)
            .map(|n| key.sign(&claims(&format!("bench-{n}"), "evault.append evault.read")))
            .collect();
        let mut next = fresh.iter().cycle();
        group.bench_function(format!("{} first call of a token", key.alg()), |b| {
            b.iter(|| {
                let token = next.next().expect("tokens");
                runtime.block_on(verifier.verify(black_box(token)))
            })
        });
        // A client's next calls with the same token.
        let token = &fresh[0];
        runtime
            .block_on(verifier.verify(token))
            .expect("a valid token");
        group.bench_function(format!("{} same token again", key.alg()), |b| {
            b.iter(|| runtime.block_on(verifier.verify(black_box(token))))
        });
    }

    // The baseline: the signature alone, over a token-sized message.
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let message = keys[2].sign(&claims("bench", "evault.append evault.read"));
    let signature = pair.sign(message.as_bytes());
    let public = UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref().to_vec());
    group.bench_function("baseline: ring Ed25519 signature only", |b| {
        b.iter(|| public.verify(black_box(message.as_bytes()), signature.as_ref()))
    });
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    verify(&mut c);
}

criterion_main!(benches);
