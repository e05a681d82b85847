//! Known-answer tests of the RADIUS codec against FreeRADIUS radclient 3.2.1:
//! requests radclient sent (captured on a UDP socket) and responses radclient
//! accepted (tests/data/radius_vectors.py regenerates both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use countersign_server::radius::codec::{
    self, MessageAuthenticator, Packet, attr, check_request_authenticator, check_response,
    decode_password, encode_password, encode_response,
};
use serde_json::Value;

fn vectors(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The quoted value of `name` in radclient's attribute list.
fn quoted(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name} = \""))? + name.len() + 4;
    let end = attrs[start..].find('"')? + start;
    Some(attrs[start..end].to_owned())
}

#[test]
fn requests_radclient_sent() {
    let all = vectors(include_str!("data/radius_requests.json"));
    assert_eq!(all.len(), 5);
    for v in &all {
        let name = v["name"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap().as_bytes();
        let attrs = v["attrs"].as_str().unwrap();
        let wire = hex::decode(v["packet"].as_str().unwrap()).unwrap();
        let packet = Packet::decode(&wire).unwrap();
        assert_eq!(packet.code, codec::code::ACCESS_REQUEST, "{name}");
        let user = quoted(attrs, "User-Name").unwrap();
        assert_eq!(
            packet.first(attr::USER_NAME),
            Some(user.as_bytes()),
            "{name}"
        );
        // Message-Authenticator: valid with the secret, invalid with another.
        let ma = check_request_authenticator(&wire, secret);
        if attrs.contains("Message-Authenticator") {
            assert_eq!(ma, MessageAuthenticator::Valid, "{name}");
            assert_eq!(
                check_request_authenticator(&wire, b"wrong secret"),
                MessageAuthenticator::Invalid,
                "{name}"
            );
            // Any changed byte breaks it.
            let mut flipped = wire.clone();
            flipped[5] ^= 1;
            assert_eq!(
                check_request_authenticator(&flipped, secret),
                MessageAuthenticator::Invalid,
                "{name}"
            );
        } else {
            assert_eq!(ma, MessageAuthenticator::Missing, "{name}");
        }
        // PAP: decodes to what radclient was given, and encodes back to the same bytes.
        match quoted(attrs, "User-Password").filter(|p| !p.is_empty()) {
            Some(password) => {
                let hidden = packet.first(attr::USER_PASSWORD).unwrap();
                let plain = decode_password(hidden, secret, &packet.authenticator).unwrap();
                assert_eq!(plain.as_slice(), password.as_bytes(), "{name}");
                let again = encode_password(password.as_bytes(), secret, &packet.authenticator);
                assert_eq!(again.as_deref(), Some(hidden), "{name}");
            }
            // radclient leaves an empty User-Password out.
            None => assert_eq!(packet.first(attr::USER_PASSWORD), None, "{name}"),
        }
        if name == "State and Proxy-State" {
            assert_eq!(packet.first(attr::STATE), Some(&[1u8, 2, 3, 4, 5][..]));
            assert_eq!(
                packet.first(attr::PROXY_STATE),
                Some(&[0xab, 0xcd, 0xef][..])
            );
        }
        // Trailing bytes past the Length field are ignored (RFC 2865 §3).
        let mut padded = wire.clone();
        padded.extend_from_slice(&[0, 1, 2]);
        assert_eq!(Packet::decode(&padded).unwrap(), packet, "{name}");
        assert_eq!(check_request_authenticator(&padded, secret), ma, "{name}");
    }
}

#[test]
fn responses_radclient_accepted() {
    let all = vectors(include_str!("data/radius_responses.json"));
    assert_eq!(all.len(), 3);
    for v in &all {
        let name = v["name"].as_str().unwrap();
        let request =
            Packet::decode(&hex::decode(v["request"].as_str().unwrap()).unwrap()).unwrap();
        let want = hex::decode(v["response"].as_str().unwrap()).unwrap();
        let parsed = Packet::decode(&want).unwrap();
        // Everything but the Message-Authenticator (the encoder writes it first).
        let rest: Vec<(u8, &[u8])> = parsed
            .attributes
            .iter()
            .skip(1)
            .map(|(k, v)| (*k, v.as_slice()))
            .collect();
        let ours = encode_response(
            parsed.code,
            request.identifier,
            &request.authenticator,
            &rest,
            b"testing123",
        );
        assert_eq!(hex::encode(&ours), hex::encode(&want), "{name}");
        assert!(check_response(&ours, b"testing123", &request.authenticator));
        assert!(!check_response(
            &ours,
            b"testing124",
            &request.authenticator
        ));
    }
}

#[test]
fn strict_lengths() {
    let ok = codec::encode_request(7, &[9; 16], &[(attr::USER_NAME, b"alice")], b"s", true);
    assert!(Packet::decode(&ok).is_ok());
    // Shorter than the header or than the Length field.
    assert!(Packet::decode(&ok[..19]).is_err());
    assert!(Packet::decode(&ok[..ok.len() - 1]).is_err());
    // Length field outside 20..=4096.
    let mut bad = ok.clone();
    bad[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert!(Packet::decode(&bad).is_err());
    bad[2..4].copy_from_slice(&4097u16.to_be_bytes());
    assert!(Packet::decode(&bad).is_err());
    // An attribute of length 0 or 1, or running past the packet.
    for len in [0u8, 1, 200] {
        let mut bad = ok.clone();
        bad[21] = len;
        assert!(Packet::decode(&bad).is_err(), "attribute length {len}");
    }
    // Two Message-Authenticators, or one of the wrong size, never verify.
    let two = codec::encode_request(
        7,
        &[9; 16],
        &[(attr::MESSAGE_AUTHENTICATOR, &[0u8; 16])],
        b"s",
        true,
    );
    assert_eq!(
        check_request_authenticator(&two, b"s"),
        MessageAuthenticator::Invalid
    );
    let short = codec::encode_request(
        7,
        &[9; 16],
        &[(attr::MESSAGE_AUTHENTICATOR, &[0u8; 15])],
        b"s",
        false,
    );
    assert_eq!(
        check_request_authenticator(&short, b"s"),
        MessageAuthenticator::Invalid
    );
    // PAP values must be 16..=128 bytes in whole blocks.
    assert!(decode_password(&[0; 15], b"s", &[0; 16]).is_none());
    assert!(decode_password(&[0; 144], b"s", &[0; 16]).is_none());
    assert!(decode_password(&[], b"s", &[0; 16]).is_none());
    assert!(encode_password(&[b'a'; 129], b"s", &[0; 16]).is_none());
    let hidden = encode_password(&[b'a'; 128], b"s", &[3; 16]).unwrap();
    assert_eq!(hidden.len(), 128);
    assert_eq!(
        decode_password(&hidden, b"s", &[3; 16]).unwrap().as_slice(),
        &[b'a'; 128]
    );
}
