//! The crypto-only bound: what the server must compute per login, timed with
//! ring in process. A push login costs the server three ECDSA P-256 verifies
//! (the device's signed fetch, the signed answer and the answer's inner
//! signature), one seal to the device's KEM key (an ephemeral P-256 key pair,
//! ECDH, HKDF-SHA256, AES-256-GCM) and one ECDSA P-256 signature (the sealed
//! challenge). No server can do a login in less CPU than this.

use std::time::Instant;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use ring::{aead, agreement, hkdf};

/// A challenge-sized plaintext (the sealed challenge's payload).
const PAYLOAD: usize = 320;

/// Microseconds of crypto per login, measured over `secs` seconds (one core).
pub fn bound_us(secs: f64) -> Result<f64, String> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "keygen")?;
    let server_key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| "key")?;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "keygen")?;
    let device_key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| "key")?;
    let message = vec![0x5a_u8; 400];
    let device_sig = device_key.sign(&rng, &message).map_err(|_| "sign")?;
    let device_pub = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        device_key.public_key().as_ref().to_vec(),
    );
    let kem =
        agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).map_err(|_| "kem")?;
    let kem_pub = kem.compute_public_key().map_err(|_| "kem pub")?;
    let kem_peer =
        agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, kem_pub.as_ref().to_vec());

    let one_login = || -> Result<(), String> {
        for _ in 0..3 {
            device_pub
                .verify(&message, device_sig.as_ref())
                .map_err(|_| "verify")?;
        }
        let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
            .map_err(|_| "ephemeral")?;
        let _ephemeral_pub = ephemeral
            .compute_public_key()
            .map_err(|_| "ephemeral pub")?;
        let key = agreement::agree_ephemeral(ephemeral, &kem_peer, |shared| {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"countersign bench").extract(shared);
            let okm = prk.expand(&[b"seal"], &aead::AES_256_GCM).ok()?;
            Some(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
        })
        .map_err(|_| "agree")?
        .ok_or("hkdf")?;
        let mut sealed = vec![0x42_u8; PAYLOAD];
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::from(b"header"),
            &mut sealed,
        )
        .map_err(|_| "seal")?;
        let signature = server_key.sign(&rng, &sealed).map_err(|_| "sign")?;
        std::hint::black_box(signature);
        Ok(())
    };
    // Warm up, then time whole seconds of logins.
    for _ in 0..50 {
        one_login()?;
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        for _ in 0..20 {
            one_login()?;
        }
        n += 20;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / n as f64)
}
