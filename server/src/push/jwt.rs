//! Minimal JWS compact serialisation for the two provider tokens we sign
//! (RS256 for Google service accounts, ES256 for APNs and VAPID), signed with ring.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde::Serialize;

use super::PushError;

/// The DER body of the first PEM block labelled `label` (e.g. `PRIVATE KEY`).
pub fn pem_to_der(pem: &str, label: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, PushError> {
    let wanted = SectionKind::try_from(label.as_bytes())
        .map_err(|()| PushError::Config(format!("unknown PEM label {label}")))?;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) =
            section.map_err(|e| PushError::Config(format!("bad PEM block {label}: {e}")))?;
        let der = zeroize::Zeroizing::new(der);
        if kind == wanted {
            return Ok(der);
        }
    }
    Err(PushError::Config(format!("no PEM block {label}")))
}

fn signing_input(header: &impl Serialize, claims: &impl Serialize) -> Result<String, PushError> {
    let h = serde_json::to_vec(header).map_err(|e| PushError::Config(e.to_string()))?;
    let c = serde_json::to_vec(claims).map_err(|e| PushError::Config(e.to_string()))?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(h),
        URL_SAFE_NO_PAD.encode(c)
    ))
}

/// An RS256 signer (Google service-account assertion).
pub struct Rs256 {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Rs256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256(<redacted>)")
    }
}

impl Rs256 {
    /// Loads a PKCS#8 RSA private key from PEM.
    pub fn from_pem(pem: &str) -> Result<Self, PushError> {
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| PushError::Config(format!("RSA key rejected: {e}")))?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Signs `header.claims` and returns the compact JWT.
    pub fn sign(
        &self,
        header: &impl Serialize,
        claims: &impl Serialize,
    ) -> Result<String, PushError> {
        let input = signing_input(header, claims)?;
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| PushError::Config("RSA signing failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// An ES256 signer (APNs provider token).
pub struct Es256 {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Es256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256(<redacted>)")
    }
}

impl Es256 {
    /// Loads a PKCS#8 P-256 private key from PEM (an APNs .p8 file).
    pub fn from_pem(pem: &str) -> Result<Self, PushError> {
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| PushError::Config(format!("P-256 key rejected: {e}")))?;
        Ok(Self { key, rng })
    }

    /// The public key: the 65-byte uncompressed SEC1 point (VAPID's `k`).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Signs `header.claims` (raw r||s signature, as JWS ES256 requires).
    pub fn sign(
        &self,
        header: &impl Serialize,
        claims: &impl Serialize,
    ) -> Result<String, PushError> {
        let input = signing_input(header, claims)?;
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| PushError::Config("ECDSA signing failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}
