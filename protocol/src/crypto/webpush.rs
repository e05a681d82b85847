//! Web Push message encryption (RFC 8291) in the `aes128gcm` content coding
//! (RFC 8188): one record of at most [`RECORD_SIZE`] bytes, the last-record
//! padding delimiter `0x02` and no further padding, a fresh ephemeral P-256 key
//! and a fresh 16-byte salt per message.
//!
//! The sender is what an application server needs; the receiver
//! ([`webpush_decrypt`]) is what a user agent (a UnifiedPush connector) does,
//! kept here for tests and for a device that decrypts itself.

use zeroize::Zeroizing;

use super::{
    AES_GCM_TAG_LEN, AgreementKey, CryptoError, KeyAgreement, PublicKey, SEC1_UNCOMPRESSED_LEN,
    aes_gcm_open, aes_gcm_seal, hkdf_expand, hkdf_extract, random_array,
};

/// The record size written into the header (RFC 8188 `rs`).
pub const RECORD_SIZE: u32 = 4096;

/// The header: salt (16) || rs (4) || idlen (1) || keyid (the 65-byte sender key).
pub const WEBPUSH_HEADER_LEN: usize = 16 + 4 + 1 + SEC1_UNCOMPRESSED_LEN;

/// The largest plaintext a push service must accept: RFC 8030 §7.2 lets a push
/// service refuse bodies over 4096 bytes, and header, delimiter and tag take
/// their share.
pub const WEBPUSH_MAX_PLAINTEXT: usize = 4096 - WEBPUSH_HEADER_LEN - 1 - AES_GCM_TAG_LEN;

/// The length of a subscription's authentication secret.
pub const WEBPUSH_AUTH_LEN: usize = 16;

/// The padding delimiter of the last (here: only) record.
const LAST_RECORD: u8 = 0x02;

/// The content-encryption key and nonce of one message.
struct Keys {
    cek: Zeroizing<[u8; 16]>,
    nonce: Zeroizing<[u8; 12]>,
}

/// RFC 8291 §3.3–3.4 and RFC 8188 §2.2–2.3: from the ECDH secret to CEK and nonce.
fn derive(
    ecdh_secret: &[u8],
    auth_secret: &[u8; WEBPUSH_AUTH_LEN],
    ua_public: &[u8; SEC1_UNCOMPRESSED_LEN],
    as_public: &[u8; SEC1_UNCOMPRESSED_LEN],
    salt: &[u8; 16],
) -> Result<Keys, CryptoError> {
    let prk_key = hkdf_extract(auth_secret, ecdh_secret);
    let mut key_info = Vec::with_capacity(14 + 2 * SEC1_UNCOMPRESSED_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = Zeroizing::new([0u8; 32]);
    hkdf_expand(prk_key.as_ref(), &key_info, ikm.as_mut())?;
    let prk = hkdf_extract(salt, ikm.as_ref());
    let mut cek = Zeroizing::new([0u8; 16]);
    hkdf_expand(prk.as_ref(), b"Content-Encoding: aes128gcm\0", cek.as_mut())?;
    let mut nonce = Zeroizing::new([0u8; 12]);
    hkdf_expand(prk.as_ref(), b"Content-Encoding: nonce\0", nonce.as_mut())?;
    Ok(Keys { cek, nonce })
}

/// Encrypts `plaintext` for the subscription (`ua_public`, `auth_secret`) as one
/// `aes128gcm` message, with a fresh ephemeral key and salt. The result is the
/// whole HTTP body (header and record).
///
/// Fails with [`CryptoError::InvalidLength`] above [`WEBPUSH_MAX_PLAINTEXT`].
pub fn webpush_encrypt(
    plaintext: &[u8],
    ua_public: &PublicKey,
    auth_secret: &[u8; WEBPUSH_AUTH_LEN],
) -> Result<Vec<u8>, CryptoError> {
    let ephemeral = AgreementKey::generate()?;
    let salt = random_array::<16>()?;
    encrypt_with(plaintext, ua_public, auth_secret, &ephemeral, &salt)
}

/// [`webpush_encrypt`] with a given ephemeral key and salt (known-answer tests).
fn encrypt_with(
    plaintext: &[u8],
    ua_public: &PublicKey,
    auth_secret: &[u8; WEBPUSH_AUTH_LEN],
    ephemeral: &AgreementKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, CryptoError> {
    if plaintext.len() > WEBPUSH_MAX_PLAINTEXT {
        return Err(CryptoError::InvalidLength);
    }
    let as_public = ephemeral.public_key().to_sec1();
    let ecdh = ephemeral.diffie_hellman(ua_public)?;
    let keys = derive(
        ecdh.as_ref(),
        auth_secret,
        &ua_public.to_sec1(),
        &as_public,
        salt,
    )?;
    let mut record = Zeroizing::new(Vec::with_capacity(plaintext.len() + 1));
    record.extend_from_slice(plaintext);
    record.push(LAST_RECORD);
    // Record 0: the nonce XOR the sequence number 0 is the nonce itself.
    let sealed = aes_gcm_seal(keys.cek.as_ref(), &keys.nonce, &[], &record)?;
    let mut out = Vec::with_capacity(WEBPUSH_HEADER_LEN + sealed.len());
    out.extend_from_slice(salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(SEC1_UNCOMPRESSED_LEN as u8);
    out.extend_from_slice(&as_public);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a one-record `aes128gcm` Web Push message with the subscription's
/// private key and authentication secret (the user agent's side of RFC 8291).
///
/// Fails with [`CryptoError::InvalidLength`] for a malformed header or a
/// message of more than one record, [`CryptoError::InvalidKey`] for a bad
/// sender key and [`CryptoError::Decrypt`] for anything that does not
/// authenticate or lacks the last-record delimiter.
pub fn webpush_decrypt(
    message: &[u8],
    ua_key: &impl KeyAgreement,
    auth_secret: &[u8; WEBPUSH_AUTH_LEN],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (salt, rest) = message
        .split_first_chunk::<16>()
        .ok_or(CryptoError::InvalidLength)?;
    let (rs, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(CryptoError::InvalidLength)?;
    let (idlen, rest) = rest.split_first().ok_or(CryptoError::InvalidLength)?;
    if usize::from(*idlen) != SEC1_UNCOMPRESSED_LEN {
        return Err(CryptoError::InvalidKey);
    }
    let (key_id, ciphertext) = rest
        .split_first_chunk::<SEC1_UNCOMPRESSED_LEN>()
        .ok_or(CryptoError::InvalidLength)?;
    let rs = u32::from_be_bytes(*rs) as usize;
    // A record holds at least the delimiter and the tag; one record only.
    if rs <= AES_GCM_TAG_LEN || ciphertext.len() > rs || ciphertext.len() <= AES_GCM_TAG_LEN {
        return Err(CryptoError::InvalidLength);
    }
    let sender = PublicKey::from_sec1(key_id)?;
    let ecdh = ua_key.diffie_hellman(&sender)?;
    let keys = derive(
        ecdh.as_ref(),
        auth_secret,
        &ua_key.public_key().to_sec1(),
        key_id,
        salt,
    )?;
    let mut record = aes_gcm_open(keys.cek.as_ref(), &keys.nonce, &[], ciphertext)?;
    // Padding is zeros after the delimiter; the last record's delimiter is 2.
    let end = record
        .iter()
        .rposition(|b| *b != 0)
        .ok_or(CryptoError::Decrypt)?;
    if record.get(end) != Some(&LAST_RECORD) {
        return Err(CryptoError::Decrypt);
    }
    record.truncate(end);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// RFC 8291 §5 (checked independently: Python `http_ece` decrypts this
    /// message with these keys to the plaintext).
    #[test]
    fn rfc8291_section5_example() {
        let plaintext = b64("V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24");
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
        let as_private =
            AgreementKey::from_bytes(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        assert_eq!(
            as_private.public_key().to_sec1().to_vec(),
            b64(
                "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
            )
        );
        let ua_private =
            AgreementKey::from_bytes(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
        let ua_public = PublicKey::from_sec1(&b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        ))
        .unwrap();
        assert_eq!(ua_private.public_key(), ua_public);
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let auth: [u8; 16] = b64("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap();
        let expected = b64(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        let got = encrypt_with(&plaintext, &ua_public, &auth, &as_private, &salt).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            webpush_decrypt(&expected, &ua_private, &auth)
                .unwrap()
                .as_slice(),
            plaintext.as_slice()
        );
    }

    #[test]
    fn fresh_key_and_salt_each_time_and_round_trip() {
        let ua = AgreementKey::generate().unwrap();
        let auth = random_array::<16>().unwrap();
        let a = webpush_encrypt(b"wake", &ua.public_key(), &auth).unwrap();
        let b = webpush_encrypt(b"wake", &ua.public_key(), &auth).unwrap();
        assert_ne!(a[..16], b[..16], "salt");
        assert_ne!(a[21..86], b[21..86], "ephemeral key");
        assert_eq!(a.len(), WEBPUSH_HEADER_LEN + 4 + 1 + AES_GCM_TAG_LEN);
        assert_eq!(&a[16..21], &[0, 0, 0x10, 0, 65]);
        assert_eq!(webpush_decrypt(&a, &ua, &auth).unwrap().as_slice(), b"wake");
        // Wrong auth secret, wrong key, tampering: nothing decrypts.
        let other = AgreementKey::generate().unwrap();
        assert!(webpush_decrypt(&a, &other, &auth).is_err());
        assert!(webpush_decrypt(&a, &ua, &[0u8; 16]).is_err());
        let mut bad = a.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(webpush_decrypt(&bad, &ua, &auth), Err(CryptoError::Decrypt));
        assert!(webpush_decrypt(&a[..50], &ua, &auth).is_err());
    }

    #[test]
    fn size_limit() {
        let ua = AgreementKey::generate().unwrap();
        let auth = [1u8; 16];
        let max = vec![7u8; WEBPUSH_MAX_PLAINTEXT];
        let msg = webpush_encrypt(&max, &ua.public_key(), &auth).unwrap();
        assert_eq!(msg.len(), 4096);
        assert_eq!(webpush_decrypt(&msg, &ua, &auth).unwrap().as_slice(), max);
        assert_eq!(
            webpush_encrypt(&[0u8; WEBPUSH_MAX_PLAINTEXT + 1], &ua.public_key(), &auth),
            Err(CryptoError::InvalidLength)
        );
    }
}
