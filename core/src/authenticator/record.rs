//! The persisted state of one account: one JSON blob in [`SecureStorage`] under
//! `acct/<local id>`, written whole (atomically) on every change.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::crypto::{AgreementKey, PublicKey};
use crate::error::{Error, Result};
use crate::protocol::encoding::{b64url, b64url_array, b64url_decode};
use crate::protocol::{OtpParams, Verification, VerificationPolicy};

use super::types::{KEM_KEY_GRACE, MAX_KEM_KEYS};
use crate::protocol::Decision;

/// Record format version.
pub(crate) const RECORD_VERSION: u32 = 1;
/// Storage key prefix of account records.
pub(crate) const RECORD_PREFIX: &str = "acct/";
/// Most replay entries kept per account (oldest expiry dropped first).
pub(crate) const MAX_SEEN: usize = 512;
/// Replay entries are kept this long after their challenge expired (seconds).
pub(crate) const SEEN_GRACE: u64 = 3600;

/// Secret bytes, base64url in the JSON, zeroized in memory.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub Zeroizing<Vec<u8>>);

impl Secret {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let text = Zeroizing::new(b64url(&self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        b64url_decode("secret", &text, 4096)
            .map(|v| Self(Zeroizing::new(v)))
            .map_err(|_| serde::de::Error::custom("bad secret encoding"))
    }
}

/// One KEM key K the device holds.
///
/// Current form: the key lives in the platform [`KeyVault`](crate::platform::KeyVault)
/// and the record holds only its handle: `alias` and `public` (the record never
/// holds private key bytes from a vault). Legacy form, written by versions before
/// K moved to the vault: `scalar` inline, no `alias`/`public`. Both parse (the
/// fields are optional, so a legacy record loads unchanged, at the same record
/// version); exactly one form per key, else the record is damaged. New keys are
/// always vault keys; a legacy key is used until it rotates out.
/// (A version before this one cannot read the current form: no downgrade.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KemKey {
    /// Key id of the public key (what challenge headers name).
    pub kid: String,
    /// Vault alias of the key-agreement key (current form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Base64url SEC1 public key of the vault key (current form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// The private scalar (legacy form only; never written for a new key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Secret>,
    /// Server time when the server moved to another key. Challenges sealed to
    /// this one may still arrive for [`KEM_KEY_GRACE`] seconds after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<u64>,
}

impl KemKey {
    /// A vault key the server has not moved away from (yet).
    pub(crate) fn in_vault(kid: String, alias: String, public: &PublicKey) -> Self {
        Self {
            kid,
            alias: Some(alias),
            public: Some(b64url(&public.to_sec1())),
            scalar: None,
            superseded_at: None,
        }
    }

    /// The public key: stored with a vault key, derived from a legacy scalar.
    pub(crate) fn public_key(&self) -> Result<PublicKey> {
        match (&self.public, &self.scalar) {
            (Some(text), None) => {
                let sec1 = b64url_array::<65>("key", text).map_err(|_| Error::Storage)?;
                PublicKey::from_sec1(&sec1).map_err(|_| Error::Storage)
            }
            (None, Some(scalar)) => AgreementKey::from_bytes(&scalar.0)
                .map(|k| k.public_key())
                .map_err(|_| Error::Storage),
            _ => Err(Error::Storage),
        }
    }
}

/// A challenge this device has seen: replay state, the pending request while
/// it waits for the user, and the outbox entry once the user decided.
///
/// Life: received (`shown` set) → decided (`answer` and `decision` set, `shown`
/// dropped) → acknowledged (`done`, `answer` dropped) or finally refused
/// (`done`, `refused` set until the app dismisses the report).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeenTx {
    /// Transaction id.
    pub tx: String,
    /// Expiry, server unix seconds.
    pub exp: u64,
    /// Base64url challenge hash of what was shown.
    pub hash: String,
    /// The decrypted challenge while it is pending (so approve and deny work
    /// in another process or after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<Secret>,
    /// The signed answer JSON, stored before it is sent (a retry resends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// What the stored answer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Key id of the next KEM key that answer carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_kid: Option<String>,
    /// The server accepted an answer, or it can never be answered again.
    #[serde(default)]
    pub done: bool,
    /// Why the server finally refused an answer the outbox resent (its error
    /// code, or `expired`); kept until the app dismisses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl SeenTx {
    /// A newly received (or newly answered) transaction.
    pub(crate) fn new(tx: &str, exp: u64, hash: &str) -> Self {
        Self {
            tx: tx.to_owned(),
            exp,
            hash: hash.to_owned(),
            shown: None,
            answer: None,
            decision: None,
            next_kid: None,
            done: false,
            refused: None,
        }
    }

    /// An answer is stored and not yet acknowledged: it is in the outbox.
    pub(crate) fn waiting(&self) -> bool {
        self.answer.is_some() && !self.done
    }
}

/// A secret sealed by an AES-256-GCM key in the platform
/// [`KeyVault`](crate::platform::KeyVault): the key's alias and the vault's
/// opaque blob (base64url). The associated data binds it to its account and
/// purpose (see [`Sealed::aad`]), so a blob cannot be moved between accounts
/// or fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sealed {
    /// Vault alias of the sealing key.
    pub alias: String,
    /// Base64url of the blob [`KeyVault::seal`](crate::platform::KeyVault::seal)
    /// returned.
    pub blob: String,
}

/// Associated-data label of a push account's sealed OTP seed.
pub(crate) const SEED_AAD: &str = "countersign/v1/seed";
/// Associated-data label of an `otpauth://` account's sealed URI.
pub(crate) const OTPAUTH_AAD: &str = "countersign/v1/otpauth";

impl Sealed {
    /// The associated data for a secret of account `id` labelled `label`.
    pub(crate) fn aad(label: &str, id: &str) -> Vec<u8> {
        let mut a = label.as_bytes().to_vec();
        a.push(0);
        a.extend_from_slice(id.as_bytes());
        a
    }

    /// The blob's bytes (a damaged record if not base64url).
    pub(crate) fn blob_bytes(&self) -> Result<Vec<u8>> {
        b64url_decode("sealed", &self.blob, 8192).map_err(|_| Error::Storage)
    }
}

/// Where a record keeps one of its secrets.
#[derive(Debug, Clone)]
pub(crate) enum StoredSecret {
    /// Sealed by a vault key (every record this version writes).
    Sealed(Sealed),
    /// Inline in the (encrypted) storage: records of earlier versions.
    Inline(Secret),
}

impl StoredSecret {
    /// From a record's pair of optional fields: exactly one must be set.
    fn of(sealed: &Option<Sealed>, inline: &Option<Secret>) -> Result<Self> {
        match (sealed, inline) {
            (Some(s), None) => Ok(Self::Sealed(s.clone())),
            (None, Some(i)) => Ok(Self::Inline(Secret(i.0.clone()))),
            _ => Err(Error::Storage),
        }
    }
}

/// Du's unlock secret wrapped under a PIN-derived key (PBKDF2-HMAC-SHA256 →
/// AES-256-GCM): Du's scalar in a legacy record, a random token when Du is in
/// the vault (see [`UserKeyRecord`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PinWrap {
    pub salt: Secret,
    pub iterations: u32,
    pub nonce: Secret,
    pub ct: Secret,
}

/// Du's unlock secret (as for [`PinWrap`]) wrapped under a key agreed with a
/// user-verification-bound vault key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BioWrap {
    /// Vault alias of the UV-bound key-agreement key.
    pub alias: String,
    /// Base64url SEC1 of the ephemeral public key the KEK was agreed with.
    pub ephemeral: String,
    pub nonce: Secret,
    pub ct: Secret,
}

/// The user-verification key Du and how it is protected.
///
/// Current form (`vault_alias` set): Du is a signing key in the platform
/// [`KeyVault`](crate::platform::KeyVault) under `cs.<id>.du`, the record
/// holds its alias and public key, never a scalar. `pin` and `bio` then wrap
/// a random 32-byte token: the wrap opening (the PIN-derived key, or the
/// UV-bound vault ECDH) is the proof the user passed; the core then has the
/// vault sign with Du. While neither is set up, nothing secret is stored at
/// all (`plain` stays empty). Du is not UV-bound in the vault: it serves both
/// the PIN and biometrics (see the [`KeyVault`](crate::platform::KeyVault)
/// docs on what the core enforces).
///
/// Legacy form (`vault_alias` absent), written by versions before Du moved to
/// the vault: Du is a software key whose scalar is wrapped in `pin` / `bio`,
/// or kept in `plain` while neither is set up. Such a record keeps working
/// unchanged (a software scalar cannot be moved into a platform vault: the
/// keystores generate their keys and import none here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserKeyRecord {
    /// Base64url SEC1 public key.
    pub public: String,
    /// Vault alias of Du (current form); absent in a legacy record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_alias: Option<String>,
    /// Unprotected scalar (legacy form only, only while neither a PIN nor
    /// biometrics is set up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<Secret>,
    /// The unlock secret under the app PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinWrap>,
    /// The unlock secret under the UV-bound biometric vault key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<BioWrap>,
}

/// A push account on a countersign-server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushAccount {
    pub server_url: String,
    pub account_id: String,
    pub device_id: String,
    /// Base64url SEC1 of the pinned server key S.
    pub server_key: String,
    pub policy: VerificationPolicy,
    pub otp: OtpParams,
    /// The OTP seed inline (legacy form; never written by this version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<Secret>,
    /// The OTP seed sealed by the vault key `cs.<id>.seed` (current form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_seed: Option<Sealed>,
    /// Vault alias of Dp.
    pub dp_alias: String,
    /// Base64url SEC1 of Dp.
    pub dp_public: String,
    pub user_key: UserKeyRecord,
    /// Estimated `server time - device time`, seconds (from signed timestamps).
    pub clock_offset: i64,
    /// KEM keys still in flight, oldest first (vault handles; see [`KemKey`]).
    pub kem_keys: Vec<KemKey>,
    /// The KEM key id the server last confirmed sealing to (an answer's
    /// `kem_kid`, a challenge sealed to it, or a resync); never deleted.
    pub server_kem_kid: String,
    pub seen: Vec<SeenTx>,
    /// Consecutive wrong PINs, persisted before each check.
    pub pin_failures: u32,
    /// Verification the user requires for every approval on this account.
    pub min_verification: Verification,
}

/// A plain `otpauth://` account (imported).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtpauthAccount {
    /// The canonical URI (holds the secret) inline (legacy form; never written
    /// by this version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<Secret>,
    /// The canonical URI sealed by the vault key `cs.<id>.seed` (current form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_uri: Option<Sealed>,
}

impl OtpauthAccount {
    /// Where the URI is kept (exactly one form, else the record is damaged).
    pub(crate) fn uri_secret(&self) -> Result<StoredSecret> {
        StoredSecret::of(&self.sealed_uri, &self.uri)
    }
}

/// What kind of account: a JSON object whose `type` names it, beside the
/// kind's own fields (an internally tagged enum; decoded by hand, see below).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum RecordKind {
    Push(Box<PushAccount>),
    Otpauth(OtpauthAccount),
}

/// The `type` of a [`RecordKind`].
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindTag {
    Push,
    Otpauth,
}

impl KindTag {
    /// The kind whose fields `d` holds.
    fn kind<'de, D: Deserializer<'de>>(self, d: D) -> std::result::Result<RecordKind, D::Error> {
        Ok(match self {
            Self::Push => RecordKind::Push(Box::new(PushAccount::deserialize(d)?)),
            Self::Otpauth => RecordKind::Otpauth(OtpauthAccount::deserialize(d)?),
        })
    }
}

/// Serde's derived decoding of an internally tagged enum first copies the
/// whole object into an untyped buffer (every string allocated twice) to find
/// the tag: a fifth of decoding a record. The records this crate writes put
/// `type` first, so the kind's fields are decoded straight from the rest of
/// the object; an object with `type` elsewhere (written by hand, or by another
/// encoder) still decodes, through a buffer as before.
impl<'de> Deserialize<'de> for RecordKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> serde::de::Visitor<'de> for KindVisitor {
    type Value = RecordKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an account kind")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<RecordKind, A::Error> {
        use serde::de::Error as _;
        use serde::de::value::MapAccessDeserializer;
        let Some(first) = map.next_key::<String>()? else {
            return Err(A::Error::missing_field("type"));
        };
        if first == "type" {
            let tag: KindTag = map.next_value()?;
            return tag.kind(MapAccessDeserializer::new(map));
        }
        // `type` is not first: buffer the object to find it (secrets in the
        // buffer are not zeroized; this crate never writes such a record).
        let mut rest = serde_json::Map::new();
        rest.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            if rest.insert(key, value).is_some() {
                return Err(A::Error::custom("duplicate field in an account kind"));
            }
        }
        let tag = rest
            .remove("type")
            .ok_or_else(|| A::Error::missing_field("type"))?;
        let tag = KindTag::deserialize(tag).map_err(A::Error::custom)?;
        tag.kind(serde_json::Value::Object(rest))
            .map_err(A::Error::custom)
    }
}

/// One account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountRecord {
    pub v: u32,
    pub id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub created: u64,
    pub kind: RecordKind,
}

impl AccountRecord {
    pub(crate) fn storage_key(id: &str) -> String {
        format!("{RECORD_PREFIX}{id}")
    }

    pub(crate) fn push(&self) -> Result<&PushAccount> {
        match &self.kind {
            RecordKind::Push(p) => Ok(p),
            RecordKind::Otpauth(_) => Err(Error::Unsupported),
        }
    }

    pub(crate) fn push_mut(&mut self) -> Result<&mut PushAccount> {
        match &mut self.kind {
            RecordKind::Push(p) => Ok(p),
            RecordKind::Otpauth(_) => Err(Error::Unsupported),
        }
    }

    /// The record as stored (JSON).
    pub(crate) fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.to_bytes_sized(0)
    }

    /// [`Self::to_bytes`] into a buffer of `capacity` bytes to start with
    /// (about the size expected): each time a growing buffer is moved, its
    /// old copy (secrets included) is freed without being zeroized, and the
    /// copying itself took a tenth of a record save.
    pub(crate) fn to_bytes_sized(&self, capacity: usize) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut *out, self).map_err(|_| Error::Internal)?;
        Ok(out)
    }

    /// Parses the record stored under `key`; it must name itself by that key.
    pub(crate) fn parse(key: &str, bytes: &[u8]) -> Result<Self> {
        let rec: Self = serde_json::from_slice(bytes).map_err(|_| Error::Storage)?;
        if rec.v != RECORD_VERSION || Self::storage_key(&rec.id) != key {
            return Err(Error::Storage);
        }
        Ok(rec)
    }
}

impl PushAccount {
    /// Where the OTP seed is kept (exactly one form, else the record is damaged).
    pub(crate) fn seed_secret(&self) -> Result<StoredSecret> {
        StoredSecret::of(&self.sealed_seed, &self.seed)
    }

    /// Refuses a transaction already answered, or whose answer waits to be resent.
    pub(crate) fn check_unanswered(&self, tx: &str) -> Result<()> {
        match self.seen.iter().find(|s| s.tx == tx) {
            Some(s) if s.done || s.answer.is_some() => Err(Error::AlreadyAnswered),
            _ => Ok(()),
        }
    }

    /// The server said it now seals to `kid` (an accepted answer's `kem_kid`, a
    /// resync) at server time `now`: it becomes the confirmed key. `false` when
    /// this device does not hold that key (then nothing changes and a resync is
    /// due).
    pub(crate) fn confirm_kem_key(&mut self, kid: &str, now: u64) -> bool {
        let held = self.kem_keys.iter().any(|k| k.kid == kid);
        if held {
            self.move_server_to(kid, now);
        }
        held
    }

    /// A challenge signed by S was sealed to `kid`: the server has moved to that
    /// key, unless the confirmed one is newer (an older challenge opened late).
    pub(crate) fn saw_kem_key_used(&mut self, kid: &str, now: u64) {
        let position = |k: &str| self.kem_keys.iter().position(|key| key.kid == k);
        match (position(kid), position(&self.server_kem_kid)) {
            (Some(used), Some(confirmed)) if used <= confirmed => {}
            (Some(_), _) => self.move_server_to(kid, now),
            (None, _) => {}
        }
    }

    /// Records that the server seals to `kid` from `now` on: every other key
    /// starts its grace period (`kid`'s own ends: it is in use again).
    fn move_server_to(&mut self, kid: &str, now: u64) {
        self.server_kem_kid = kid.to_owned();
        for key in &mut self.kem_keys {
            if key.kid == kid {
                key.superseded_at = None;
            } else if key.superseded_at.is_none() {
                key.superseded_at = Some(now);
            }
        }
    }

    /// Drops the KEM keys no challenge can be sealed to any more: superseded
    /// more than [`KEM_KEY_GRACE`] seconds before `now` (server time). Never the
    /// confirmed key, nor one still in its grace period, nor one carried by an
    /// answer waiting to be resent (the server may take it): the server may
    /// seal to any of them. Beyond [`MAX_KEM_KEYS`], the oldest unprotected ones
    /// go first (a bound on storage, reached only by an abusive server).
    ///
    /// Returns the vault aliases of the keys dropped: the caller deletes them
    /// from the vault once this record is stored (never before).
    #[must_use = "the dropped keys must be deleted from the vault once the record is stored"]
    pub(crate) fn trim_kem_keys(&mut self, now: u64) -> Vec<String> {
        let before: Vec<Option<String>> = self.kem_keys.iter().map(|k| k.alias.clone()).collect();
        let waiting: Vec<String> = self
            .seen
            .iter()
            .filter(|s| s.waiting())
            .filter_map(|s| s.next_kid.clone())
            .collect();
        let confirmed = self.server_kem_kid.clone();
        let in_use = |k: &KemKey| k.kid == confirmed || waiting.contains(&k.kid);
        self.kem_keys.retain(|k| {
            in_use(k)
                || k.superseded_at
                    .is_none_or(|t| t.saturating_add(KEM_KEY_GRACE) >= now)
        });
        while self.kem_keys.len() > MAX_KEM_KEYS {
            let Some(pos) = self.kem_keys.iter().position(|k| !in_use(k)) else {
                break;
            };
            self.kem_keys.remove(pos);
        }
        before
            .into_iter()
            .flatten()
            .filter(|a| !self.kem_keys.iter().any(|k| k.alias.as_ref() == Some(a)))
            .collect()
    }

    /// Forgets the contents of expired requests, drops replay entries long past
    /// expiry, then the oldest beyond [`MAX_SEEN`].
    pub(crate) fn prune_seen(&mut self, server_now: u64) {
        // An expired request is never shown again: its contents go at once.
        for s in &mut self.seen {
            if s.exp < server_now {
                s.shown = None;
            }
        }
        self.seen.retain(|s| {
            s.exp.saturating_add(SEEN_GRACE) >= server_now || s.waiting() || s.refused.is_some()
        });
        if self.seen.len() > MAX_SEEN {
            // What matters least goes first: settled or expired entries (replay
            // state only; the server accepts one answer per challenge anyway),
            // then requests still waiting for the user, oldest expiry first.
            // Never an answer waiting to be sent or a refusal the app has not
            // seen: those are the user's decisions.
            let rank = |s: &SeenTx| -> u8 {
                if s.waiting() || s.refused.is_some() {
                    2
                } else if s.done || s.exp < server_now || s.shown.is_none() {
                    0
                } else {
                    1
                }
            };
            let mut order: Vec<usize> = (0..self.seen.len()).collect();
            order.sort_by_key(|&i| self.seen.get(i).map(|s| (rank(s), s.exp)));
            let extra = self.seen.len() - MAX_SEEN;
            let mut drop: Vec<usize> = order
                .into_iter()
                .filter(|&i| self.seen.get(i).is_some_and(|s| rank(s) < 2))
                .take(extra)
                .collect();
            drop.sort_unstable();
            for i in drop.into_iter().rev() {
                self.seen.remove(i);
            }
        }
    }
}

/// The record `a1` ("alice") holding push account `p`, for unit tests.
#[cfg(test)]
pub(crate) fn test_push_record(p: PushAccount) -> AccountRecord {
    AccountRecord {
        v: RECORD_VERSION,
        id: "a1".into(),
        label: "alice".into(),
        issuer: None,
        created: 0,
        kind: RecordKind::Push(Box::new(p)),
    }
}

/// A push account with placeholder keys, for unit tests of record logic.
#[cfg(test)]
pub(crate) fn test_push_account() -> PushAccount {
    use crate::protocol::OtpAlgorithm;
    PushAccount {
        server_url: "https://cs.example/".into(),
        account_id: "acct".into(),
        device_id: "dev".into(),
        server_key: String::new(),
        policy: VerificationPolicy {
            default: Verification::None,
            pin_min_length: 6,
            pin_max_attempts: 10,
            biometric_allowed: true,
        },
        otp: OtpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        },
        seed: Some(Secret::new(&[7; 20])),
        sealed_seed: None,
        dp_alias: "cs.a.dp".into(),
        dp_public: String::new(),
        user_key: UserKeyRecord {
            public: String::new(),
            vault_alias: None,
            plain: None,
            pin: None,
            bio: None,
        },
        clock_offset: 0,
        kem_keys: Vec::new(),
        server_kem_kid: String::new(),
        seen: Vec::new(),
        pin_failures: 0,
        min_verification: Verification::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(tx: &str, exp: u64, answer: Option<&str>, done: bool) -> SeenTx {
        SeenTx {
            answer: answer.map(str::to_owned),
            done,
            ..SeenTx::new(tx, exp, "")
        }
    }

    #[test]
    fn answered_transactions_are_refused() {
        let mut p = test_push_account();
        p.seen = vec![
            seen("shown", 100, None, false),
            seen("sending", 100, Some("{}"), false),
            seen("done", 100, None, true),
        ];
        assert_eq!(p.check_unanswered("shown"), Ok(()));
        assert_eq!(p.check_unanswered("new"), Ok(()));
        assert_eq!(p.check_unanswered("sending"), Err(Error::AlreadyAnswered));
        assert_eq!(p.check_unanswered("done"), Err(Error::AlreadyAnswered));
    }

    #[test]
    fn replay_state_is_pruned_but_unsent_answers_kept() {
        let mut p = test_push_account();
        p.seen = vec![
            seen("old", 100, None, true),
            seen("old-unsent", 100, Some("{}"), false),
            seen("recent", 100 + SEEN_GRACE, None, false),
        ];
        p.seen[2].shown = Some(Secret::new(b"{}"));
        p.prune_seen(100 + SEEN_GRACE);
        assert!(p.seen[2].shown.is_some(), "not expired yet");
        p.prune_seen(101 + SEEN_GRACE);
        let left: Vec<&str> = p.seen.iter().map(|s| s.tx.as_str()).collect();
        assert_eq!(left, ["old-unsent", "recent"]);
        // Kept as replay state, but an expired request's contents are gone.
        assert!(p.seen[1].shown.is_none());

        p.seen = (0..MAX_SEEN as u64 + 3)
            .rev()
            .map(|i| seen(&format!("t{i}"), 10_000 + i, None, true))
            .collect();
        p.prune_seen(0);
        assert_eq!(p.seen.len(), MAX_SEEN);
        // The earliest expiries go first.
        assert!(p.seen.iter().all(|s| s.exp >= 10_003));

        // Beyond the limit, answers waiting to be sent and requests waiting for
        // the user outlive settled entries, whatever their expiry.
        let mut waiting = seen("waiting", 1_000, Some("{}"), false);
        waiting.decision = Some(Decision::Deny);
        let mut shown = seen("shown", 1_001, None, false);
        shown.shown = Some(Secret::new(b"{}"));
        p.seen.push(waiting);
        p.seen.push(shown);
        p.prune_seen(0);
        assert_eq!(p.seen.len(), MAX_SEEN);
        assert!(p.seen.iter().any(|s| s.tx == "waiting"));
        assert!(p.seen.iter().any(|s| s.tx == "shown"));
        // Waiting answers are never dropped, even past the limit.
        p.seen = (0..MAX_SEEN as u64 + 2)
            .map(|i| seen(&format!("w{i}"), 10_000, Some("{}"), false))
            .collect();
        p.prune_seen(0);
        assert_eq!(p.seen.len(), MAX_SEEN + 2);
    }

    fn kem(kid: &str) -> KemKey {
        let public = AgreementKey::from_bytes(&[1; 32]).unwrap().public_key();
        KemKey::in_vault(kid.into(), format!("alias-{kid}"), &public)
    }

    fn aliases(kids: &[&str]) -> Vec<String> {
        kids.iter().map(|k| format!("alias-{k}")).collect()
    }

    fn kids(p: &PushAccount) -> Vec<&str> {
        p.kem_keys.iter().map(|k| k.kid.as_str()).collect()
    }

    const T: u64 = 1_000_000;

    #[test]
    fn superseded_kem_keys_are_kept_for_the_grace_period_only() {
        let mut p = test_push_account();
        p.kem_keys = ["k0", "k1", "k2", "k3", "k4", "k5"]
            .into_iter()
            .map(kem)
            .collect();
        p.server_kem_kid = "k0".into();
        // Many answers in a row (many logins pending): the server moves on, and
        // every older key is kept while challenges sealed to it may be pending.
        assert!(p.confirm_kem_key("k5", T));
        assert!(p.trim_kem_keys(T + KEM_KEY_GRACE).is_empty());
        assert_eq!(kids(&p), ["k0", "k1", "k2", "k3", "k4", "k5"]);
        // Once no such challenge can exist, only the server's key is left; the
        // others' vault aliases are returned, to be deleted.
        assert_eq!(
            p.trim_kem_keys(T + KEM_KEY_GRACE + 1),
            aliases(&["k0", "k1", "k2", "k3", "k4"])
        );
        assert_eq!(kids(&p), ["k5"]);
        // Nothing else to drop: the server's key alone is never removed.
        assert!(p.trim_kem_keys(u64::MAX).is_empty());
        assert_eq!(kids(&p), ["k5"]);
    }

    #[test]
    fn kem_keys_are_bounded_even_if_never_superseded() {
        let mut p = test_push_account();
        p.kem_keys = (0..MAX_KEM_KEYS + 3)
            .map(|i| kem(&format!("k{i}")))
            .collect();
        p.server_kem_kid = "k1".into();
        assert_eq!(p.trim_kem_keys(T), aliases(&["k0", "k2", "k3"]));
        assert_eq!(p.kem_keys.len(), MAX_KEM_KEYS);
        // The oldest unprotected keys went first; the server's key stayed.
        assert_eq!(kids(&p)[..2], ["k1", "k4"]);
    }

    #[test]
    fn kem_keys_of_answers_waiting_to_be_resent_are_kept() {
        let mut p = test_push_account();
        p.kem_keys = ["k0", "k1", "k2"].into_iter().map(kem).collect();
        p.server_kem_kid = "k0".into();
        assert!(p.confirm_kem_key("k2", T));
        let mut waiting = seen("t", 100, Some("{}"), false);
        waiting.next_kid = Some("k0".into());
        // An accepted answer's key is no longer protected by its entry.
        let mut done = seen("u", 100, None, true);
        done.next_kid = Some("k1".into());
        p.seen = vec![waiting, done];
        assert_eq!(p.trim_kem_keys(T + KEM_KEY_GRACE + 1), aliases(&["k1"]));
        assert_eq!(kids(&p), ["k0", "k2"]);
    }

    #[test]
    fn kem_key_confirmation() {
        let mut p = test_push_account();
        p.kem_keys = ["k0", "k1", "k2"].into_iter().map(kem).collect();
        p.server_kem_kid = "k0".into();
        // Only a held key can be confirmed.
        assert!(!p.confirm_kem_key("elsewhere", T));
        assert_eq!(p.server_kem_kid, "k0");
        assert!(p.kem_keys.iter().all(|k| k.superseded_at.is_none()));
        assert!(p.confirm_kem_key("k2", T));
        assert_eq!(p.server_kem_kid, "k2");
        // The others' grace periods start now, and do not restart later.
        assert!(
            p.kem_keys
                .iter()
                .filter(|k| k.kid != "k2")
                .all(|k| k.superseded_at == Some(T))
        );
        // The server's word wins, even for an older key (a resync).
        assert!(p.confirm_kem_key("k1", T + 5));
        assert_eq!(p.server_kem_kid, "k1");
        assert_eq!(p.kem_keys[0].superseded_at, Some(T));
        assert_eq!(p.kem_keys[1].superseded_at, None);
        assert_eq!(p.kem_keys[2].superseded_at, Some(T + 5));

        // A challenge sealed to a newer key moves the confirmation forward; one
        // sealed to an older key (opened late) does not move it back.
        p.saw_kem_key_used("k0", T + 6);
        assert_eq!(p.server_kem_kid, "k1");
        p.saw_kem_key_used("k2", T + 7);
        assert_eq!(p.server_kem_kid, "k2");
        p.saw_kem_key_used("unknown", T + 8);
        assert_eq!(p.server_kem_kid, "k2");
        // A confirmed key no longer held (an old record) yields to a held one.
        p.server_kem_kid = "gone".into();
        p.saw_kem_key_used("k1", T + 9);
        assert_eq!(p.server_kem_kid, "k1");
    }

    #[test]
    fn legacy_inline_kem_keys_still_load_and_are_never_returned_for_deletion() {
        // The shape versions before vault KEM keys wrote: the scalar inline.
        let legacy = AgreementKey::from_bytes(&[2; 32]).unwrap();
        let json = serde_json::json!({
            "kid": legacy.public_key().key_id(),
            "scalar": b64url(legacy.to_bytes().as_slice()),
            "superseded_at": 5,
        });
        let old: KemKey = serde_json::from_value(json.clone()).unwrap();
        assert!(old.alias.is_none() && old.public.is_none());
        assert_eq!(old.public_key().unwrap(), legacy.public_key());
        // Written back unchanged.
        assert_eq!(serde_json::to_value(&old).unwrap(), json);

        // The current form holds no private bytes.
        let new = kem("k1");
        let text = serde_json::to_string(&new).unwrap();
        assert!(!text.contains("scalar"), "{text}");
        assert_eq!(
            new.public_key().unwrap(),
            AgreementKey::from_bytes(&[1; 32]).unwrap().public_key()
        );
        // Neither form, or both: a damaged record.
        let both = KemKey {
            scalar: old.scalar.clone(),
            ..new.clone()
        };
        assert_eq!(both.public_key().err(), Some(Error::Storage));

        // A legacy key is dropped from the record like any other, with no vault
        // key to delete.
        let mut p = test_push_account();
        p.kem_keys = vec![old, kem("k1")];
        p.server_kem_kid = "k1".into();
        assert!(p.trim_kem_keys(u64::MAX).is_empty());
        assert_eq!(kids(&p), ["k1"]);
    }

    #[test]
    fn account_kinds_decode_with_the_type_anywhere() {
        let push = test_push_record(test_push_account());
        let bytes = push.to_bytes().unwrap();
        // As written: `type` first in the kind.
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(r#""kind":{"type":"push","#), "{text}");
        let back = AccountRecord::parse("acct/a1", &bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);

        // `type` elsewhere (a JSON value's keys are written sorted: `type`
        // after `account_id`): the same record.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let sorted = serde_json::to_vec(&value).unwrap();
        let text = std::str::from_utf8(&sorted).unwrap();
        assert!(!text.contains(r#""kind":{"type""#), "{text}");
        let back = AccountRecord::parse("acct/a1", &sorted).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);

        // An otpauth account.
        let otp = AccountRecord {
            kind: RecordKind::Otpauth(OtpauthAccount {
                uri: Some(Secret::new(b"otpauth://totp/x?secret=AAAA")),
                sealed_uri: None,
            }),
            ..push.clone()
        };
        let bytes = otp.to_bytes().unwrap();
        let back = AccountRecord::parse("acct/a1", &bytes).unwrap();
        assert!(matches!(back.kind, RecordKind::Otpauth(ref o) if o.uri == otp_uri(&otp)));
        let reordered = br#"{"v":1,"id":"a1","label":"alice","created":0,"kind":{"uri":"b3Rw","type":"otpauth"}}"#;
        assert!(matches!(
            AccountRecord::parse("acct/a1", reordered).unwrap().kind,
            RecordKind::Otpauth(_)
        ));

        // Damaged kinds are refused: no type, an unknown type, unknown or
        // repeated fields.
        for bad in [
            r#"{"uri":"b3Rw"}"#,
            r#"{}"#,
            r#"{"type":"sms","uri":"b3Rw"}"#,
            r#"{"type":"otpauth","uri":"b3Rw","extra":1}"#,
            r#"{"uri":"b3Rw","type":"otpauth","uri":"b3Rw"}"#,
            r#"{"type":"otpauth","uri":"b3Rw","type":"otpauth"}"#,
            r#"["otpauth"]"#,
        ] {
            let text = format!(r#"{{"v":1,"id":"a1","label":"alice","created":0,"kind":{bad}}}"#);
            assert_eq!(
                AccountRecord::parse("acct/a1", text.as_bytes()).err(),
                Some(Error::Storage),
                "{bad}"
            );
        }
    }

    fn otp_uri(rec: &AccountRecord) -> Option<Secret> {
        match &rec.kind {
            RecordKind::Otpauth(o) => o.uri.clone(),
            RecordKind::Push(_) => None,
        }
    }

    #[test]
    fn secret_round_trip_and_redaction() {
        let s = Secret::new(b"\x00\x01secret");
        let json = serde_json::to_string(&s).unwrap();
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(!format!("{s:?}").contains("secret"));
        assert!(serde_json::from_str::<Secret>("\"***\"").is_err());
    }
}
