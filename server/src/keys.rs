//! Server secrets: the master key that seals secrets at rest, and the long-term
//! signing key S.
//!
//! The master key comes from `master_key` in the configuration (hex or base64url of
//! 32 bytes). Without it, a random master key is created once and kept in the
//! `server_secrets` table: then a database dump alone exposes the sealed columns,
//! so production deployments should configure it (from a secrets manager). All
//! instances sharing a database must use the same master key.
//!
//! S is created once and stored sealed under the master key (see
//! [`crate::service::secrets::load`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_protocol::crypto::{aes_gcm_open, aes_gcm_seal, random_array};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

/// The 32-byte key sealing secrets at rest (AES-256-GCM).
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses 64 hex characters or 43 base64url characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bytes = Zeroizing::new(if t.len() == 64 {
            hex::decode(t).map_err(|_| "master_key: invalid hex".to_string())?
        } else {
            URL_SAFE_NO_PAD
                .decode(t)
                .map_err(|_| "master_key: invalid base64url".to_string())?
        });
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "master_key must be 32 bytes".to_string())?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Seals `plaintext`, bound to `context` (the AAD names the column and row, so
    /// a sealed value cannot be moved to another row). Output: base64url(nonce || ct).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> ApiResult<String> {
        let nonce: [u8; 12] = random_array().map_err(ApiError::internal)?;
        let ct = aes_gcm_seal(&self.0[..], &nonce, context.as_bytes(), plaintext)
            .map_err(ApiError::internal)?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value an outsider may have made or changed (a RADIUS State):
    /// `None`, without logging, when it does not open.
    pub fn try_open(&self, context: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, ct) = raw.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        aes_gcm_open(&self.0[..], &nonce, context.as_bytes(), ct).ok()
    }

    /// Opens a value made by [`Self::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> ApiResult<Zeroizing<Vec<u8>>> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| ApiError::internal("sealed value: bad encoding"))?;
        let (nonce, ct) = raw
            .split_at_checked(12)
            .ok_or_else(|| ApiError::internal("sealed value: too short"))?;
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| ApiError::internal("sealed value: nonce"))?;
        aes_gcm_open(&self.0[..], &nonce, context.as_bytes(), ct).map_err(|_| {
            ApiError::internal(format_args!(
                "cannot open sealed {context}: wrong master key or tampered row"
            ))
        })
    }
}
