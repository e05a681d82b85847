//! The RADIUS wire format (RFC 2865) with the Message-Authenticator of
//! RFC 3579 §3.2, strictly: only Access-Request in, Access-Accept / -Reject /
//! -Challenge out, and only the attributes the front uses.
//!
//! Why our own codec: the crates on crates.io (`radius`, `radius-server`,
//! `radius-rust`) are young, lightly maintained and do not put
//! Message-Authenticator first in responses or verify it on requests (the
//! BlastRADIUS defences); what we need is ~300 lines over `md-5` and `hmac`,
//! which the lock file already had.
//!
//! This file imports nothing from the crate (only `md-5`, `hmac`, `subtle`
//! and `zeroize`), so the fuzz crate compiles it on its own
//! (`fuzz/fuzz_targets/radius_packet.rs`).
//!
//! Known-answer vectors come from FreeRADIUS's `radclient` 3.2.1
//! (`radius/vectors.rs` in the tests), not from memory.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Smallest packet: the 20-byte header.
pub const MIN_PACKET: usize = 20;
/// Largest packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;
/// Longest User-Password value (RFC 2865 §5.2).
pub const MAX_PASSWORD: usize = 128;

/// Packet codes used here.
pub mod code {
    /// Access-Request.
    pub const ACCESS_REQUEST: u8 = 1;
    /// Access-Accept.
    pub const ACCESS_ACCEPT: u8 = 2;
    /// Access-Reject.
    pub const ACCESS_REJECT: u8 = 3;
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types used here.
pub mod attr {
    /// User-Name (RFC 2865 §5.1).
    pub const USER_NAME: u8 = 1;
    /// User-Password (§5.2), PAP-hidden.
    pub const USER_PASSWORD: u8 = 2;
    /// CHAP-Password (§5.3): not supported.
    pub const CHAP_PASSWORD: u8 = 3;
    /// NAS-IP-Address (§5.4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// Reply-Message (§5.18).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (§5.24).
    pub const STATE: u8 = 24;
    /// Calling-Station-Id (§5.31).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (§5.32).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Proxy-State (§5.33): copied unchanged into the reply.
    pub const PROXY_STATE: u8 = 33;
    /// Message-Authenticator (RFC 3579 §3.2).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
}

/// Why a datagram is not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or its Length field.
    Truncated,
    /// The Length field is outside 20..=4096.
    BadLength,
    /// An attribute shorter than 2 bytes or running past the packet.
    BadAttribute,
}

/// A decoded packet. The attributes are kept in order, with their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The code.
    pub code: u8,
    /// The identifier that pairs a reply with its request.
    pub identifier: u8,
    /// The Request (or Response) Authenticator.
    pub authenticator: [u8; 16],
    /// `(type, value)` in wire order.
    pub attributes: Vec<(u8, Vec<u8>)>,
}

impl Packet {
    /// Decodes `datagram`. Bytes past the Length field are ignored (RFC 2865
    /// §3: padding); a datagram shorter than it is refused.
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let wire = packet_bytes(datagram)?;
        let (header, mut rest) = wire.split_at(MIN_PACKET);
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&header[4..MIN_PACKET]);
        let mut attributes = Vec::new();
        while !rest.is_empty() {
            let [kind, len, ..] = *rest else {
                return Err(DecodeError::BadAttribute);
            };
            let len = usize::from(len);
            if len < 2 || len > rest.len() {
                return Err(DecodeError::BadAttribute);
            }
            attributes.push((kind, rest[2..len].to_vec()));
            rest = &rest[len..];
        }
        Ok(Self {
            code: header[0],
            identifier: header[1],
            authenticator,
            attributes,
        })
    }

    /// The first value of attribute `kind`.
    pub fn first(&self, kind: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of attribute `kind`, in order.
    pub fn all(&self, kind: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }
}

/// The packet inside `datagram`: exactly its Length field's bytes.
pub fn packet_bytes(datagram: &[u8]) -> Result<&[u8], DecodeError> {
    let [_, _, hi, lo, ..] = *datagram else {
        return Err(DecodeError::Truncated);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if !(MIN_PACKET..=MAX_PACKET).contains(&len) {
        return Err(DecodeError::BadLength);
    }
    datagram.get(..len).ok_or(DecodeError::Truncated)
}

/// What a request's Message-Authenticator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthenticator {
    /// The packet has none.
    Missing,
    /// Exactly one, 16 bytes, and it verifies with the secret.
    Valid,
    /// Wrong length, more than one, or it does not verify (a wrong secret).
    Invalid,
}

/// HMAC-MD5 of `data` keyed with `secret` (`None` is not reached: HMAC takes
/// keys of any length).
fn hmac_md5(secret: &[u8], data: &[u8]) -> Option<[u8; 16]> {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// Byte ranges of the Message-Authenticator values in `wire` (a packet as
/// [`packet_bytes`] returns it, whose attributes [`Packet::decode`] accepted).
fn message_authenticator_values(wire: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = MIN_PACKET;
    while let (Some(&kind), Some(&len)) = (wire.get(at), wire.get(at + 1)) {
        let len = usize::from(len);
        if len < 2 || at + len > wire.len() {
            break;
        }
        if kind == attr::MESSAGE_AUTHENTICATOR {
            found.push((at + 2, at + len));
        }
        at += len;
    }
    found
}

/// Checks the Message-Authenticator of an Access-Request: HMAC-MD5 keyed with
/// the shared secret over the whole packet with the attribute's value zeroed
/// (RFC 3579 §3.2), compared in constant time.
pub fn check_request_authenticator(datagram: &[u8], secret: &[u8]) -> MessageAuthenticator {
    let Ok(wire) = packet_bytes(datagram) else {
        return MessageAuthenticator::Invalid;
    };
    let found = message_authenticator_values(wire);
    let [(start, end)] = found.as_slice() else {
        return if found.is_empty() {
            MessageAuthenticator::Missing
        } else {
            MessageAuthenticator::Invalid
        };
    };
    let (start, end) = (*start, *end);
    if end - start != 16 {
        return MessageAuthenticator::Invalid;
    }
    let mut zeroed = wire.to_vec();
    zeroed[start..end].fill(0);
    let Some(want) = hmac_md5(secret, &zeroed) else {
        return MessageAuthenticator::Invalid;
    };
    if bool::from(want.as_slice().ct_eq(&wire[start..end])) {
        MessageAuthenticator::Valid
    } else {
        MessageAuthenticator::Invalid
    }
}

/// Decodes a PAP User-Password (RFC 2865 §5.2): `c(i) = p(i) xor MD5(S +
/// c(i-1))` with `c(0)` the Request Authenticator. Trailing NUL padding is
/// removed. `None` unless the value is 16..=128 bytes in 16-byte blocks.
pub fn decode_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Option<Zeroizing<Vec<u8>>> {
    if hidden.is_empty() || hidden.len() > MAX_PASSWORD || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(hidden.len()));
    let mut previous: &[u8] = request_authenticator;
    for block in hidden.chunks_exact(16) {
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(previous)
            .finalize();
        plain.extend(block.iter().zip(pad.iter()).map(|(c, b)| c ^ b));
        previous = block;
    }
    while plain.last() == Some(&0) {
        plain.pop();
    }
    Some(plain)
}

/// Hides a password for User-Password (the client side of [`decode_password`]).
/// `None` when it is longer than 128 bytes.
pub fn encode_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Option<Vec<u8>> {
    if password.len() > MAX_PASSWORD {
        return None;
    }
    let blocks = password.len().div_ceil(16).max(1);
    let mut padded = password.to_vec();
    padded.resize(blocks * 16, 0);
    let mut hidden: Vec<u8> = Vec::with_capacity(padded.len());
    for (n, block) in padded.chunks_exact(16).enumerate() {
        let previous = match n.checked_sub(1) {
            Some(p) => hidden.get(p * 16..n * 16)?.to_vec(),
            None => request_authenticator.to_vec(),
        };
        let pad = Md5::new()
            .chain_update(secret)
            .chain_update(&previous)
            .finalize();
        hidden.extend(block.iter().zip(pad.iter()).map(|(c, b)| c ^ b));
    }
    Some(hidden)
}

/// Appends `(kind, value)` to `out`, cutting the value at 253 bytes.
fn push_attribute(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let value = &value[..value.len().min(253)];
    out.push(kind);
    out.push(u8::try_from(value.len() + 2).unwrap_or(u8::MAX));
    out.extend_from_slice(value);
}

/// Writes the Length field and the Message-Authenticator (placed at `ma_at`,
/// the value's offset) of `packet`, whose authenticator field holds what the
/// HMAC must cover.
fn seal_message_authenticator(packet: &mut [u8], ma_at: usize, secret: &[u8]) {
    if let Some(sum) = hmac_md5(secret, packet) {
        packet[ma_at..ma_at + 16].copy_from_slice(&sum);
    }
}

/// Header and a zeroed Message-Authenticator as the first attribute, then
/// `attributes` (each cut to 253 bytes), stopping before 4096 bytes.
fn layout(
    code: u8,
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(code);
    out.push(identifier);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(authenticator);
    push_attribute(&mut out, attr::MESSAGE_AUTHENTICATOR, &[0u8; 16]);
    for (kind, value) in attributes {
        if out.len() + 2 + value.len().min(253) > MAX_PACKET {
            break;
        }
        push_attribute(&mut out, *kind, value);
    }
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
    out[2..4].copy_from_slice(&len);
    out
}

/// Offset of the first attribute's value: where [`layout`] puts the
/// Message-Authenticator.
const FIRST_VALUE: usize = MIN_PACKET + 2;

/// Encodes a response to the request with `identifier` and
/// `request_authenticator`: Message-Authenticator first (RFC 3579 §3.2,
/// computed with the Request Authenticator in the header), then `attributes`;
/// the Response Authenticator is `MD5(Code | Identifier | Length | Request
/// Authenticator | Attributes | Secret)` over the finished attributes.
pub fn encode_response(
    code: u8,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[(u8, &[u8])],
    secret: &[u8],
) -> Vec<u8> {
    let mut out = layout(code, identifier, request_authenticator, attributes);
    seal_message_authenticator(&mut out, FIRST_VALUE, secret);
    let sum = Md5::new()
        .chain_update(&out)
        .chain_update(secret)
        .finalize();
    out[4..MIN_PACKET].copy_from_slice(&sum);
    out
}

/// Encodes an Access-Request (a client: the tests and tools), with a
/// Message-Authenticator first when `message_authenticator` is set.
pub fn encode_request(
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[(u8, &[u8])],
    secret: &[u8],
    message_authenticator: bool,
) -> Vec<u8> {
    let mut out = layout(
        code::ACCESS_REQUEST,
        identifier,
        request_authenticator,
        attributes,
    );
    if message_authenticator {
        seal_message_authenticator(&mut out, FIRST_VALUE, secret);
    } else {
        out.drain(MIN_PACKET..MIN_PACKET + 18);
        let len = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
        out[2..4].copy_from_slice(&len);
    }
    out
}

/// Checks a response as a client would (the tests): the Response
/// Authenticator, and that the first attribute is a Message-Authenticator that
/// verifies against the Request Authenticator.
pub fn check_response(datagram: &[u8], secret: &[u8], request_authenticator: &[u8; 16]) -> bool {
    let Ok(wire) = packet_bytes(datagram) else {
        return false;
    };
    if Packet::decode(wire).is_err() || wire.get(MIN_PACKET) != Some(&attr::MESSAGE_AUTHENTICATOR) {
        return false;
    }
    let mut copy = wire.to_vec();
    copy[4..MIN_PACKET].copy_from_slice(request_authenticator);
    let sum = Md5::new()
        .chain_update(&copy)
        .chain_update(secret)
        .finalize();
    if !bool::from(sum[..].ct_eq(&wire[4..MIN_PACKET])) {
        return false;
    }
    if wire.get(MIN_PACKET + 1) != Some(&18) {
        return false;
    }
    let received = copy[FIRST_VALUE..FIRST_VALUE + 16].to_vec();
    copy[FIRST_VALUE..FIRST_VALUE + 16].fill(0);
    hmac_md5(secret, &copy).is_some_and(|sum| bool::from(sum.as_slice().ct_eq(&received)))
}
