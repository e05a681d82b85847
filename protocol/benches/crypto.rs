//! Crypto hot paths: ECDSA signing with ring (random nonce) vs p256
//! (RFC 6979), verification, static ECDH, and an HPKE seal + open.
//!
//! `cargo bench -p countersign-core --bench crypto -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark code

use std::hint::black_box;

use countersign_protocol::crypto::{AgreementKey, SigningKey, hpke};
use criterion::{Criterion, criterion_group, criterion_main};

const MSG: &[u8] =
    b"countersign/v1/answer{\"tx\":\"0123456789abcdef0123456789abcdef\",\"decision\":\"approve\"}";

fn ecdsa(c: &mut Criterion) {
    let key = SigningKey::generate().expect("key");
    let public = key.public_key();
    let sig = key.sign(MSG).expect("sign");

    let mut group = c.benchmark_group("ecdsa_p256_sign");
    group.bench_function("ring", |b| {
        b.iter(|| key.sign(black_box(MSG)).expect("sign"))
    });
    group.bench_function("p256_rfc6979", |b| {
        b.iter(|| key.sign_deterministic(black_box(MSG)).expect("sign"))
    });
    group.finish();

    c.bench_function("ecdsa_p256_verify_ring", |b| {
        b.iter(|| {
            public
                .verify(black_box(MSG), black_box(&sig))
                .expect("verify")
        })
    });
}

fn ecdh(c: &mut Criterion) {
    let a = AgreementKey::generate().expect("key");
    let peer = AgreementKey::generate().expect("key").public_key();
    c.bench_function("ecdh_p256_p256", |b| {
        b.iter(|| a.diffie_hellman(black_box(&peer)).expect("ecdh"))
    });
}

fn hpke_round_trip(c: &mut Criterion) {
    let recipient = AgreementKey::generate().expect("key");
    let public = recipient.public_key();
    let challenge = vec![0x42u8; 512];
    c.bench_function("hpke_seal_open_512B", |b| {
        b.iter(|| {
            let sealed = hpke::seal(&public, b"countersign/v1/challenge", b"header", &challenge)
                .expect("seal");
            hpke::open(
                &recipient,
                &sealed.enc,
                b"countersign/v1/challenge",
                b"header",
                &sealed.ciphertext,
            )
            .expect("open")
        })
    });
}

criterion_group!(benches, ecdsa, ecdh, hpke_round_trip);
criterion_main!(benches);
