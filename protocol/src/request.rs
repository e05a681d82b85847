//! Signatures over device HTTP requests (signed by Dp), carried in headers.
//!
//! The signed message is
//! `METHOD "\n" PATH_AND_QUERY "\n" DEVICE_ID "\n" TIMESTAMP "\n" NONCE "\n" BASE64URL(SHA-256(body))`
//! under the [`Purpose::Request`] label. Replay protection (remembering nonces for
//! the skew window) is the server's job.

use super::encoding::{b64url, b64url_array, b64url_bounded, check_id};
use super::error::{ProtocolError, Result};
use super::limits::{
    MAX_ID_LEN, MAX_METHOD_LEN, MAX_PATH_LEN, MAX_RANDOM_ID_BYTES, MIN_RANDOM_ID_BYTES,
};
use super::signed::{MessageSigner, Purpose, sign_detached, verify_detached};
use crate::crypto::{PublicKey, Signature, random_array, sha256};

/// Header carrying the device id.
pub const HEADER_DEVICE: &str = "Countersign-Device";
/// Header carrying the unix time in seconds (decimal).
pub const HEADER_TIMESTAMP: &str = "Countersign-Timestamp";
/// Header carrying the nonce (base64url of 16..=32 random bytes).
pub const HEADER_NONCE: &str = "Countersign-Nonce";
/// Header carrying the signature (base64url of raw r||s).
pub const HEADER_SIGNATURE: &str = "Countersign-Signature";

/// The four signature headers of a device request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaders {
    /// Device id (selects Dp on the server).
    pub device_id: String,
    /// Unix seconds when the request was signed.
    pub timestamp: u64,
    /// Base64url nonce.
    pub nonce: String,
    /// Dp's signature.
    pub signature: Signature,
}

impl RequestHeaders {
    /// `(name, value)` pairs to add to the HTTP request.
    pub fn to_pairs(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_DEVICE, self.device_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, b64url(self.signature.as_bytes())),
        ]
    }

    /// Reads and validates the headers through `get` (header name → value; names
    /// are case-insensitive in HTTP, so `get` should be too).
    pub fn from_lookup<'a>(get: impl Fn(&'static str) -> Option<&'a str>) -> Result<Self> {
        let device_id = get(HEADER_DEVICE).ok_or(ProtocolError::Malformed {
            field: HEADER_DEVICE,
        })?;
        check_id(HEADER_DEVICE, device_id, MAX_ID_LEN)?;
        let ts = get(HEADER_TIMESTAMP).ok_or(ProtocolError::Malformed {
            field: HEADER_TIMESTAMP,
        })?;
        // Plain decimal only: no sign, no leading zeros, at most 20 digits.
        if ts.is_empty()
            || ts.len() > 20
            || !ts.bytes().all(|b| b.is_ascii_digit())
            || (ts.len() > 1 && ts.starts_with('0'))
        {
            return Err(ProtocolError::Malformed {
                field: HEADER_TIMESTAMP,
            });
        }
        let timestamp = ts.parse::<u64>().map_err(|_| ProtocolError::Malformed {
            field: HEADER_TIMESTAMP,
        })?;
        let nonce = get(HEADER_NONCE).ok_or(ProtocolError::Malformed {
            field: HEADER_NONCE,
        })?;
        b64url_bounded(
            HEADER_NONCE,
            nonce,
            MIN_RANDOM_ID_BYTES,
            MAX_RANDOM_ID_BYTES,
        )?;
        let sig = get(HEADER_SIGNATURE).ok_or(ProtocolError::Malformed {
            field: HEADER_SIGNATURE,
        })?;
        let raw = b64url_array::<64>(HEADER_SIGNATURE, sig)?;
        let signature = Signature::from_raw(&raw).map_err(|_| ProtocolError::BadEncoding {
            field: HEADER_SIGNATURE,
        })?;
        Ok(Self {
            device_id: device_id.to_owned(),
            timestamp,
            nonce: nonce.to_owned(),
            signature,
        })
    }
}

/// The exact bytes signed (after the label) for a request.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    device_id: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Result<Vec<u8>> {
    if method.is_empty()
        || method.len() > MAX_METHOD_LEN
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return Err(ProtocolError::Malformed { field: "method" });
    }
    if path_and_query.len() > MAX_PATH_LEN {
        return Err(ProtocolError::TooLong {
            field: "path",
            max: MAX_PATH_LEN,
        });
    }
    if !path_and_query.starts_with('/') || !path_and_query.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolError::Malformed { field: "path" });
    }
    check_id("device", device_id, MAX_ID_LEN)?;
    b64url_bounded("nonce", nonce, MIN_RANDOM_ID_BYTES, MAX_RANDOM_ID_BYTES)?;
    let body_hash = b64url(&sha256(body));
    Ok(
        format!("{method}\n{path_and_query}\n{device_id}\n{timestamp}\n{nonce}\n{body_hash}")
            .into_bytes(),
    )
}

/// Signs a request with a fresh random 16-byte nonce.
pub fn sign_request(
    signer: &dyn MessageSigner,
    device_id: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
) -> Result<RequestHeaders> {
    let nonce = b64url(&random_array::<16>()?);
    sign_request_with_nonce(
        signer,
        device_id,
        method,
        path_and_query,
        body,
        timestamp,
        nonce,
    )
}

/// Signs a request with a given nonce (test vectors; production uses [`sign_request`]).
pub fn sign_request_with_nonce(
    signer: &dyn MessageSigner,
    device_id: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: String,
) -> Result<RequestHeaders> {
    let msg = request_message(method, path_and_query, device_id, timestamp, &nonce, body)?;
    let signature = sign_detached(Purpose::Request, &msg, signer)?;
    Ok(RequestHeaders {
        device_id: device_id.to_owned(),
        timestamp,
        nonce,
        signature,
    })
}

/// Server side: checks the timestamp is within `max_skew` seconds of `now` and the
/// signature verifies with the device's Dp. The caller must then reject a nonce it
/// has already seen for this device within the skew window.
pub fn verify_request(
    key: &PublicKey,
    headers: &RequestHeaders,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: u64,
    max_skew: u64,
) -> Result<()> {
    if headers.timestamp > now.saturating_add(max_skew) {
        return Err(ProtocolError::NotYetValid {
            not_before: headers.timestamp.saturating_sub(max_skew),
            now,
        });
    }
    if headers.timestamp.saturating_add(max_skew) < now {
        return Err(ProtocolError::Expired {
            expires: headers.timestamp.saturating_add(max_skew),
            now,
        });
    }
    let msg = request_message(
        method,
        path_and_query,
        &headers.device_id,
        headers.timestamp,
        &headers.nonce,
        body,
    )?;
    verify_detached(Purpose::Request, &msg, key, &headers.signature)
}
