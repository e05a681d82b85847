//! The RADIUS codec of the server (`server/src/radius/codec.rs`, compiled here
//! on its own: it imports nothing from the server crate).
//!
//! Asserts: no panic on any datagram; a decoded packet's attributes account
//! for its Length exactly; a verified Message-Authenticator is the only one
//! and 16 bytes; a PAP value decodes only in whole blocks of at most 128 bytes
//! and re-encodes to itself when no padding was cut; a response built from
//! the attributes decodes, starts with Message-Authenticator and verifies.
#![no_main]

#[path = "../../server/src/radius/codec.rs"]
#[allow(dead_code)]
mod codec;

use codec::{MessageAuthenticator, Packet, attr};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"testing123";

fuzz_target!(
    init: countersign_fuzz::write_seeds_if_asked("radius_packet"),
    |data: &[u8]| {
        let ma = codec::check_request_authenticator(data, SECRET);
        let Ok(packet) = Packet::decode(data) else {
            assert_ne!(ma, MessageAuthenticator::Valid);
            return;
        };
        let wire = codec::packet_bytes(data).expect("decoded packets have a length");
        let carried: usize = packet.attributes.iter().map(|(_, v)| v.len() + 2).sum();
        assert_eq!(codec::MIN_PACKET + carried, wire.len());
        if ma == MessageAuthenticator::Valid {
            let found: Vec<&[u8]> = packet.all(attr::MESSAGE_AUTHENTICATOR).collect();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].len(), 16);
        }
        if let Some(hidden) = packet.first(attr::USER_PASSWORD) {
            if let Some(plain) = codec::decode_password(hidden, SECRET, &packet.authenticator) {
                assert!(hidden.len() % 16 == 0 && (16..=128).contains(&hidden.len()));
                if plain.len().div_ceil(16).max(1) * 16 == hidden.len() {
                    let again = codec::encode_password(&plain, SECRET, &packet.authenticator);
                    assert_eq!(again.as_deref(), Some(hidden));
                }
            }
        }
        let rest: Vec<(u8, &[u8])> = packet
            .attributes
            .iter()
            .filter(|(k, _)| *k != attr::MESSAGE_AUTHENTICATOR)
            .map(|(k, v)| (*k, v.as_slice()))
            .collect();
        let reply = codec::encode_response(
            codec::code::ACCESS_CHALLENGE,
            packet.identifier,
            &packet.authenticator,
            &rest,
            SECRET,
        );
        assert!(reply.len() <= codec::MAX_PACKET);
        let decoded = Packet::decode(&reply).expect("our responses decode");
        assert_eq!(decoded.attributes[0].0, attr::MESSAGE_AUTHENTICATOR);
        assert!(codec::check_response(&reply, SECRET, &packet.authenticator));
    }
);
