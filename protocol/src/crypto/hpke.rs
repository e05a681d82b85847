//! HPKE (RFC 9180) base mode with DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and
//! AES-128-GCM (suite 0x0010 / 0x0001 / 0x0001).
//!
//! Single-shot [`seal`] / [`open`] cover the protocol's needs (one sealed
//! challenge per context). [`setup_base_sender`] / [`setup_base_receiver`]
//! give the full contexts: several messages with sequence numbers, secret
//! export, and the key-schedule intermediates for known-answer tests.

use std::fmt;

use ring::agreement;
use ring::hmac as rhmac;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use super::hash::{HKDF_MAX_OUTPUT, hkdf_expand_parts};
use super::{AgreementKey, CryptoError, KeyAgreement, PublicKey, aes_gcm_open, aes_gcm_seal};

/// KEM identifier: DHKEM(P-256, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0010;
/// KDF identifier: HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// AEAD identifier: AES-128-GCM.
pub const AEAD_ID: u16 = 0x0001;
/// Length of the encapsulated key `enc` (uncompressed P-256 point).
pub const N_ENC: usize = 65;
/// AEAD key length.
pub const N_K: usize = 16;
/// AEAD nonce length.
pub const N_N: usize = 12;
/// KDF output length (and KEM shared-secret length).
pub const N_H: usize = 32;
/// Length of the key-schedule context: `mode || psk_id_hash || info_hash`.
pub const KEY_SCHEDULE_CONTEXT_LEN: usize = 1 + 2 * N_H;

const MODE_BASE: u8 = 0x00;
/// `"KEM" || I2OSP(kem_id, 2)`.
const KEM_SUITE_ID: [u8; 5] = *b"KEM\x00\x10";
/// `"HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2)`.
const HPKE_SUITE_ID: [u8; 10] = *b"HPKE\x00\x10\x00\x01\x00\x01";
const VERSION_LABEL: &[u8] = b"HPKE-v1";

/// `LabeledExtract(salt, label, ikm)`: HMAC-SHA256 keyed with `salt` over
/// `"HPKE-v1" || suite_id || label || ikm`, streamed so `ikm` is never copied.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let key = rhmac::Key::new(rhmac::HMAC_SHA256, salt);
    let mut ctx = rhmac::Context::with_key(&key);
    ctx.update(VERSION_LABEL);
    ctx.update(suite_id);
    ctx.update(label);
    ctx.update(ikm);
    let tag = ctx.sign();
    let mut out = Zeroizing::new([0u8; 32]);
    for (o, i) in out.iter_mut().zip(tag.as_ref()) {
        *o = *i;
    }
    out
}

/// `LabeledExpand(prk, label, info, L)` with `L = out.len()`.
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.len() > HKDF_MAX_OUTPUT {
        return Err(CryptoError::InvalidLength);
    }
    let len = u16::try_from(out.len()).map_err(|_| CryptoError::InvalidLength)?;
    hkdf_expand_parts(
        prk,
        &[&len.to_be_bytes(), VERSION_LABEL, suite_id, label, info],
        out,
    )
}

/// DHKEM `ExtractAndExpand(dh, kem_context)`.
fn extract_and_expand(dh: &[u8], kem_context: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let eae_prk = labeled_extract(&KEM_SUITE_ID, b"", b"eae_prk", dh);
    let mut shared_secret = Zeroizing::new([0u8; 32]);
    labeled_expand(
        &KEM_SUITE_ID,
        eae_prk.as_ref(),
        b"shared_secret",
        kem_context,
        shared_secret.as_mut(),
    )?;
    Ok(shared_secret)
}

/// `enc || pkRm`.
fn kem_context(enc: &[u8; N_ENC], recipient: &PublicKey) -> [u8; 2 * N_ENC] {
    let mut ctx = [0u8; 2 * N_ENC];
    let pk_rm = recipient.to_sec1();
    for (o, i) in ctx.iter_mut().zip(enc.iter().chain(pk_rm.iter())) {
        *o = *i;
    }
    ctx
}

/// DHKEM `Encap` with a caller-chosen ephemeral key.
fn encap(
    ephemeral: &AgreementKey,
    recipient: &PublicKey,
) -> Result<([u8; N_ENC], Zeroizing<[u8; 32]>), CryptoError> {
    let dh = ephemeral.diffie_hellman(recipient)?;
    let enc = ephemeral.public_key().to_sec1();
    let shared_secret = extract_and_expand(dh.as_ref(), &kem_context(&enc, recipient))?;
    Ok((enc, shared_secret))
}

/// DHKEM `Encap` with a fresh random ephemeral key, in ring: its P-256 key
/// generation and ECDH are several times faster than p256's, and sealing a
/// challenge is on every push's path. The ephemeral key never leaves ring and
/// is consumed by the one agreement. (ring does not zeroize its own copies of
/// the ephemeral scalar or the raw DH output; the copy made here is zeroized.)
/// The deterministic [`encap`] stays on p256 because ring cannot import a key.
fn encap_random(recipient: &PublicKey) -> Result<([u8; N_ENC], Zeroizing<[u8; 32]>), CryptoError> {
    let rng = SystemRandom::new();
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| CryptoError::Rng)?;
    let enc: [u8; N_ENC] = ephemeral
        .compute_public_key()
        .map_err(|_| CryptoError::Rng)?
        .as_ref()
        .try_into()
        .map_err(|_| CryptoError::InvalidKey)?;
    let pk_rm = recipient.to_sec1();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &pk_rm[..]);
    let dh = agreement::agree_ephemeral(ephemeral, &peer, |z| {
        let mut dh = Zeroizing::new([0u8; 32]);
        for (o, i) in dh.iter_mut().zip(z) {
            *o = *i;
        }
        (z.len() == 32).then_some(dh)
    })
    .map_err(|_| CryptoError::InvalidKey)?
    .ok_or(CryptoError::InvalidKey)?;
    let shared_secret = extract_and_expand(dh.as_ref(), &kem_context(&enc, recipient))?;
    Ok((enc, shared_secret))
}

/// DHKEM `Decap`. The recipient's private key is used only through ECDH, and
/// `pkRm` in the KEM context is the public key it reports.
fn decap(recipient: &dyn KeyAgreement, enc: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let pk_e = PublicKey::from_sec1(enc)?;
    let dh = recipient.diffie_hellman(&pk_e)?;
    extract_and_expand(
        dh.as_ref(),
        &kem_context(&pk_e.to_sec1(), &recipient.public_key()),
    )
}

/// DHKEM(P-256) `DeriveKeyPair(ikm)` (RFC 9180 §7.1.3): a deterministic key
/// pair from input keying material, by rejection sampling.
///
/// `ikm` must be at least 32 bytes (`Nsk`) long, as the RFC advises, else
/// [`CryptoError::InvalidLength`].
pub fn derive_key_pair(ikm: &[u8]) -> Result<AgreementKey, CryptoError> {
    if ikm.len() < 32 {
        return Err(CryptoError::InvalidLength);
    }
    let dkp_prk = labeled_extract(&KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    for counter in 0u8..=255 {
        let mut candidate = Zeroizing::new([0u8; 32]);
        labeled_expand(
            &KEM_SUITE_ID,
            dkp_prk.as_ref(),
            b"candidate",
            &[counter],
            candidate.as_mut(),
        )?;
        // The RFC masks the first byte with 0xff for P-256, which changes nothing.
        match AgreementKey::from_bytes(candidate.as_ref()) {
            Ok(key) => return Ok(key),
            // Zero or not below the order: try the next counter.
            Err(CryptoError::InvalidKey) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(CryptoError::InvalidKey)
}

/// The base-mode key schedule's outputs (RFC 9180 §5.1). Every secret is
/// zeroized on drop; `Debug` redacts. The accessors exist for known-answer tests.
pub struct KeySchedule {
    shared_secret: Zeroizing<[u8; N_H]>,
    key_schedule_context: [u8; KEY_SCHEDULE_CONTEXT_LEN],
    secret: Zeroizing<[u8; N_H]>,
    key: Zeroizing<[u8; N_K]>,
    base_nonce: Zeroizing<[u8; N_N]>,
    exporter_secret: Zeroizing<[u8; N_H]>,
}

impl KeySchedule {
    fn new(shared_secret: Zeroizing<[u8; N_H]>, info: &[u8]) -> Result<Self, CryptoError> {
        let psk_id_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"info_hash", info);
        let mut ksc = [0u8; KEY_SCHEDULE_CONTEXT_LEN];
        let parts = [MODE_BASE]
            .iter()
            .chain(psk_id_hash.iter())
            .chain(info_hash.iter());
        for (o, i) in ksc.iter_mut().zip(parts) {
            *o = *i;
        }
        // Base mode: psk is empty.
        let secret = labeled_extract(&HPKE_SUITE_ID, shared_secret.as_ref(), b"secret", b"");
        let mut key = Zeroizing::new([0u8; N_K]);
        labeled_expand(&HPKE_SUITE_ID, secret.as_ref(), b"key", &ksc, key.as_mut())?;
        let mut base_nonce = Zeroizing::new([0u8; N_N]);
        labeled_expand(
            &HPKE_SUITE_ID,
            secret.as_ref(),
            b"base_nonce",
            &ksc,
            base_nonce.as_mut(),
        )?;
        let mut exporter_secret = Zeroizing::new([0u8; N_H]);
        labeled_expand(
            &HPKE_SUITE_ID,
            secret.as_ref(),
            b"exp",
            &ksc,
            exporter_secret.as_mut(),
        )?;
        Ok(Self {
            shared_secret,
            key_schedule_context: ksc,
            secret,
            key,
            base_nonce,
            exporter_secret,
        })
    }

    /// The KEM shared secret.
    pub fn shared_secret(&self) -> &[u8; N_H] {
        &self.shared_secret
    }

    /// `mode || psk_id_hash || info_hash` (not secret).
    pub fn key_schedule_context(&self) -> &[u8; KEY_SCHEDULE_CONTEXT_LEN] {
        &self.key_schedule_context
    }

    /// The key-schedule secret.
    pub fn secret(&self) -> &[u8; N_H] {
        &self.secret
    }

    /// The AEAD key.
    pub fn key(&self) -> &[u8; N_K] {
        &self.key
    }

    /// The base nonce, XORed with the sequence number for each message.
    pub fn base_nonce(&self) -> &[u8; N_N] {
        &self.base_nonce
    }

    /// The exporter secret.
    pub fn exporter_secret(&self) -> &[u8; N_H] {
        &self.exporter_secret
    }

    /// The AEAD nonce for sequence number `seq`: `base_nonce XOR I2OSP(seq, Nn)`.
    pub fn nonce(&self, seq: u64) -> [u8; N_N] {
        let mut nonce = *self.base_nonce;
        let mut seq_bytes = [0u8; N_N];
        for (o, i) in seq_bytes.iter_mut().skip(N_N - 8).zip(seq.to_be_bytes()) {
            *o = i;
        }
        for (n, s) in nonce.iter_mut().zip(seq_bytes) {
            *n ^= s;
        }
        nonce
    }

    /// `Export(exporter_context, L)` with `L = out.len()` (at most `255 * 32`).
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        labeled_expand(
            &HPKE_SUITE_ID,
            self.exporter_secret.as_ref(),
            b"sec",
            exporter_context,
            out,
        )
    }
}

impl fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySchedule(<redacted>)")
    }
}

/// The sender's HPKE context: seals messages in order.
#[derive(Debug)]
pub struct SenderContext {
    schedule: KeySchedule,
    seq: u64,
}

impl SenderContext {
    /// The key-schedule intermediates (for known-answer tests).
    pub fn key_schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    /// The sequence number the next [`seal`](Self::seal) uses.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Seals the next message: `ciphertext || tag`.
    ///
    /// Fails with [`CryptoError::InvalidLength`] once the sequence number is
    /// exhausted (after 2^64 - 1 messages).
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let next = self.seq.checked_add(1).ok_or(CryptoError::InvalidLength)?;
        let ct = aes_gcm_seal(
            self.schedule.key.as_ref(),
            &self.schedule.nonce(self.seq),
            aad,
            plaintext,
        )?;
        self.seq = next;
        Ok(ct)
    }

    /// Exports `out.len()` bytes (at most `255 * 32`) bound to `exporter_context`.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        self.schedule.export(exporter_context, out)
    }
}

/// The recipient's HPKE context: opens messages in order.
#[derive(Debug)]
pub struct ReceiverContext {
    schedule: KeySchedule,
    seq: u64,
}

impl ReceiverContext {
    /// The key-schedule intermediates (for known-answer tests).
    pub fn key_schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    /// The sequence number the next [`open`](Self::open) expects.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Opens the next message. The sequence number advances only on success.
    pub fn open(
        &mut self,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let next = self.seq.checked_add(1).ok_or(CryptoError::InvalidLength)?;
        let pt = aes_gcm_open(
            self.schedule.key.as_ref(),
            &self.schedule.nonce(self.seq),
            aad,
            ciphertext,
        )?;
        self.seq = next;
        Ok(pt)
    }

    /// Exports `out.len()` bytes (at most `255 * 32`) bound to `exporter_context`.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        self.schedule.export(exporter_context, out)
    }
}

/// `SetupBaseS(pkR, info)` with a fresh ephemeral key: returns `enc` and the context.
pub fn setup_base_sender(
    recipient: &PublicKey,
    info: &[u8],
) -> Result<([u8; N_ENC], SenderContext), CryptoError> {
    let (enc, shared_secret) = encap_random(recipient)?;
    let schedule = KeySchedule::new(shared_secret, info)?;
    Ok((enc, SenderContext { schedule, seq: 0 }))
}

/// `SetupBaseS` with a caller-chosen ephemeral key: deterministic, for
/// vectors and tests only. Never reuse an ephemeral key in production.
pub fn setup_base_sender_with_ephemeral(
    ephemeral: &AgreementKey,
    recipient: &PublicKey,
    info: &[u8],
) -> Result<([u8; N_ENC], SenderContext), CryptoError> {
    let (enc, shared_secret) = encap(ephemeral, recipient)?;
    let schedule = KeySchedule::new(shared_secret, info)?;
    Ok((enc, SenderContext { schedule, seq: 0 }))
}

/// `SetupBaseR(enc, skR, info)`. A malformed `enc` gives [`CryptoError::InvalidKey`].
///
/// `recipient` is any [`KeyAgreement`]: an [`AgreementKey`], or a key in a
/// platform keystore that only performs the ECDH (an error from it is passed on).
pub fn setup_base_receiver(
    recipient: &dyn KeyAgreement,
    enc: &[u8],
    info: &[u8],
) -> Result<ReceiverContext, CryptoError> {
    let shared_secret = decap(recipient, enc)?;
    let schedule = KeySchedule::new(shared_secret, info)?;
    Ok(ReceiverContext { schedule, seq: 0 })
}

/// A single-shot HPKE message: the encapsulated key and `ciphertext || tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The sender's ephemeral public key, uncompressed SEC1.
    pub enc: [u8; 65],
    /// AES-128-GCM `ciphertext || tag` at sequence number 0.
    pub ciphertext: Vec<u8>,
}

/// Single-shot `SealBase`: encrypts `plaintext` to `recipient`.
pub fn seal(
    recipient: &PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, CryptoError> {
    let (enc, mut ctx) = setup_base_sender(recipient, info)?;
    let ciphertext = ctx.seal(aad, plaintext)?;
    Ok(Sealed { enc, ciphertext })
}

/// Single-shot `SealBase` with a caller-chosen ephemeral key: deterministic,
/// for vectors and tests only.
pub fn seal_with_ephemeral(
    ephemeral: &AgreementKey,
    recipient: &PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, CryptoError> {
    let (enc, mut ctx) = setup_base_sender_with_ephemeral(ephemeral, recipient, info)?;
    let ciphertext = ctx.seal(aad, plaintext)?;
    Ok(Sealed { enc, ciphertext })
}

/// Single-shot `OpenBase`. Fails with [`CryptoError::InvalidKey`] for a
/// malformed `enc` and [`CryptoError::Decrypt`] for anything that does not
/// authenticate (wrong key, info or aad, tampering). An error of the
/// recipient's [`KeyAgreement::diffie_hellman`] is passed on unchanged.
pub fn open(
    recipient: &dyn KeyAgreement,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    setup_base_receiver(recipient, enc, info)?.open(aad, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failures() {
        let recipient = AgreementKey::generate().unwrap();
        let sealed = seal(&recipient.public_key(), b"info", b"header", b"challenge").unwrap();
        let pt = open(
            &recipient,
            &sealed.enc,
            b"info",
            b"header",
            &sealed.ciphertext,
        )
        .unwrap();
        assert_eq!(pt.as_slice(), b"challenge");

        let wrong = AgreementKey::generate().unwrap();
        assert_eq!(
            open(&wrong, &sealed.enc, b"info", b"header", &sealed.ciphertext),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open(
                &recipient,
                &sealed.enc,
                b"info",
                b"headeR",
                &sealed.ciphertext
            ),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open(
                &recipient,
                &sealed.enc,
                b"infO",
                b"header",
                &sealed.ciphertext
            ),
            Err(CryptoError::Decrypt)
        );
        let mut ct = sealed.ciphertext.clone();
        ct[0] ^= 0x80;
        assert_eq!(
            open(&recipient, &sealed.enc, b"info", b"header", &ct),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open(
                &recipient,
                &sealed.enc[..33],
                b"info",
                b"header",
                &sealed.ciphertext
            ),
            Err(CryptoError::InvalidKey)
        );
    }

    #[test]
    fn contexts_sequence_and_export() {
        let recipient = AgreementKey::generate().unwrap();
        let (enc, mut sender) = setup_base_sender(&recipient.public_key(), b"i").unwrap();
        let mut receiver = setup_base_receiver(&recipient, &enc, b"i").unwrap();
        let c0 = sender.seal(b"a", b"m0").unwrap();
        let c1 = sender.seal(b"a", b"m1").unwrap();
        assert_eq!(sender.seq(), 2);
        // Out of order fails and does not advance.
        assert_eq!(receiver.open(b"a", &c1), Err(CryptoError::Decrypt));
        assert_eq!(receiver.seq(), 0);
        assert_eq!(receiver.open(b"a", &c0).unwrap().as_slice(), b"m0");
        assert_eq!(receiver.open(b"a", &c1).unwrap().as_slice(), b"m1");
        let (mut e1, mut e2) = ([0u8; 40], [0u8; 40]);
        sender.export(b"ctx", &mut e1).unwrap();
        receiver.export(b"ctx", &mut e2).unwrap();
        assert_eq!(e1, e2);
        let mut too_long = vec![0u8; HKDF_MAX_OUTPUT + 1];
        assert_eq!(
            sender.export(b"ctx", &mut too_long),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(format!("{sender:?}").matches("redacted").count(), 1);
    }

    #[test]
    fn ring_sealed_opens_with_p256_open() {
        // `seal` and `setup_base_sender` take the ephemeral key and ECDH from
        // ring; `open` decapsulates with p256: they must agree on `enc` (a valid
        // uncompressed point) and the shared secret, for any plaintext length.
        for _ in 0..16 {
            let recipient = AgreementKey::generate().unwrap();
            let pt = random_pt();
            let sealed = seal(&recipient.public_key(), b"info", b"aad", &pt).unwrap();
            assert_eq!(sealed.enc[0], 0x04);
            PublicKey::from_sec1(&sealed.enc).unwrap();
            let opened =
                open(&recipient, &sealed.enc, b"info", b"aad", &sealed.ciphertext).unwrap();
            assert_eq!(opened.as_slice(), pt.as_slice());
            let (enc, mut sender) = setup_base_sender(&recipient.public_key(), b"i").unwrap();
            let mut receiver = setup_base_receiver(&recipient, &enc, b"i").unwrap();
            assert_eq!(
                sender.key_schedule().shared_secret(),
                receiver.key_schedule().shared_secret()
            );
            let ct = sender.seal(b"", b"m").unwrap();
            assert_eq!(receiver.open(b"", &ct).unwrap().as_slice(), b"m");
        }
        // Fresh ephemeral keys: two seals of the same message differ.
        let recipient = AgreementKey::generate().unwrap();
        let a = seal(&recipient.public_key(), b"", b"", b"x").unwrap();
        let b = seal(&recipient.public_key(), b"", b"", b"x").unwrap();
        assert_ne!(a.enc, b.enc);
    }

    fn random_pt() -> Vec<u8> {
        let len = usize::from(crate::crypto::random_array::<1>().unwrap()[0]);
        let mut pt = vec![0u8; len];
        crate::crypto::random_bytes(&mut pt).unwrap();
        pt
    }

    /// A recipient that is only a public key and an ECDH function (as a key in a
    /// platform keystore is), counting its agreements.
    struct EcdhOnly {
        key: AgreementKey,
        reported: PublicKey,
        calls: std::cell::Cell<usize>,
        fail: bool,
    }

    impl KeyAgreement for EcdhOnly {
        fn public_key(&self) -> PublicKey {
            self.reported.clone()
        }

        fn diffie_hellman(&self, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
            self.calls.set(self.calls.get() + 1);
            if self.fail {
                return Err(CryptoError::Unsupported);
            }
            self.key.diffie_hellman(peer)
        }
    }

    #[test]
    fn receiver_needs_only_a_public_key_and_ecdh() {
        let key = AgreementKey::generate().unwrap();
        let public = key.public_key();
        let sealed = seal(&public, b"info", b"aad", b"challenge").unwrap();
        let recipient = EcdhOnly {
            key,
            reported: public.clone(),
            calls: std::cell::Cell::new(0),
            fail: false,
        };
        let pt = open(&recipient, &sealed.enc, b"info", b"aad", &sealed.ciphertext).unwrap();
        assert_eq!(pt.as_slice(), b"challenge");
        assert_eq!(recipient.calls.get(), 1);

        // pkRm in the KEM context is the reported public key: a wrong one fails.
        let lying = EcdhOnly {
            reported: AgreementKey::generate().unwrap().public_key(),
            ..recipient
        };
        assert_eq!(
            open(&lying, &sealed.enc, b"info", b"aad", &sealed.ciphertext),
            Err(CryptoError::Decrypt)
        );
        // An ECDH failure is passed on as it is.
        let failing = EcdhOnly {
            reported: public,
            fail: true,
            ..lying
        };
        assert_eq!(
            open(&failing, &sealed.enc, b"info", b"aad", &sealed.ciphertext),
            Err(CryptoError::Unsupported)
        );
    }

    #[test]
    fn derive_key_pair_is_deterministic() {
        let a = derive_key_pair(&[7u8; 32]).unwrap();
        let b = derive_key_pair(&[7u8; 32]).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(
            derive_key_pair(&[7u8; 31]).err(),
            Some(CryptoError::InvalidLength)
        );
    }
}
