//! Unit tests of the parts that need no server (the server flows are covered by
//! the end-to-end tests in `tests/e2e`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::error::Error;
use crate::platform::{
    Clock, HookError, HttpClient, HttpError, HttpRequest, HttpResponse, MemoryStorage, NoopLogger,
    SecureStorage, SoftwareKeyVault, UserVerifier, VerificationOutcome, VerificationPrompt,
};
use crate::protocol::{DenyReason, Platform, PushRegistration};

/// An HTTP hook with no network (shared with other modules' unit tests).
pub(super) struct NoNetwork;

#[async_trait::async_trait]
impl HttpClient for NoNetwork {
    async fn send(&self, _: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        Err(HttpError::Connect("offline".into()))
    }
}

/// A user who cancels every prompt (shared with other modules' unit tests).
pub(super) struct NoUser;

#[async_trait::async_trait]
impl UserVerifier for NoUser {
    async fn verify(
        &self,
        _: VerificationPrompt,
    ) -> std::result::Result<VerificationOutcome, HookError> {
        Ok(VerificationOutcome::Cancelled)
    }
}

struct FixedClock(AtomicU64);

impl Clock for FixedClock {
    fn now(&self) -> std::result::Result<u64, HookError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

fn authenticator(storage: Arc<MemoryStorage>) -> Authenticator {
    authenticator_on(storage)
}

fn authenticator_on(storage: Arc<dyn SecureStorage>) -> Authenticator {
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
        verifier: Arc::new(NoUser),
        http: Arc::new(NoNetwork),
        clock: Arc::new(FixedClock(AtomicU64::new(59))),
        logger: Arc::new(NoopLogger),
    };
    Authenticator::new(hooks, AuthenticatorConfig::new(Platform::Desktop)).unwrap()
}

const RFC_TOTP: &str = "otpauth://totp/Example:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&algorithm=SHA1&digits=8&period=30";
const RFC_HOTP: &str =
    "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&counter=0";

#[test]
fn otpauth_import_codes_export_and_reload() {
    let storage = Arc::new(MemoryStorage::new());
    let auth = authenticator(storage.clone());
    let totp = auth.import_otpauth(RFC_TOTP).unwrap();
    assert_eq!(totp.kind, AccountKind::Otp);
    // RFC 6238 Appendix B, SHA1, T = 59.
    let code = auth.otp(&totp.id).unwrap();
    assert_eq!(code.code.as_str(), "94287082");
    assert_eq!(code.seconds_left, Some(1));
    assert!(!format!("{code:?}").contains("9428"));

    let hotp = auth.import_otpauth(RFC_HOTP).unwrap();
    // RFC 4226 Appendix D: counters 0, 1, 2; the counter survives a restart.
    assert_eq!(auth.otp(&hotp.id).unwrap().code.as_str(), "755224");
    assert_eq!(auth.otp(&hotp.id).unwrap().code.as_str(), "287082");
    let reloaded = authenticator(storage);
    assert_eq!(reloaded.otp(&hotp.id).unwrap().code.as_str(), "359152");
    assert_eq!(reloaded.accounts().unwrap().len(), 2);
    let exported = reloaded.export_otpauth(&hotp.id).unwrap();
    assert!(exported.contains("counter=3"), "{}", exported.as_str());
    assert!(exported.starts_with("otpauth://hotp/"));

    reloaded.forget_account(&totp.id).unwrap();
    assert_eq!(reloaded.otp(&totp.id).err(), Some(Error::AccountNotFound));
    assert_eq!(
        reloaded.import_otpauth("otpauth://totp/x?secret=AA").err(),
        Some(Error::InvalidInput {
            what: "otpauth URI"
        })
    );
}

#[tokio::test]
async fn offline_calls_fail_cleanly() {
    let auth = authenticator(Arc::new(MemoryStorage::new()));
    assert_eq!(
        auth.pending(0, &CancelHandle::new()).await.err(),
        Some(Error::NotActivated)
    );
    assert_eq!(
        auth.activate_uri("https://not-an-offer", ActivationOptions::default())
            .await
            .err(),
        Some(Error::InvalidInput {
            what: "activation URI"
        })
    );
    assert_eq!(
        auth.activate_code(
            "http://127.0.0.1:1/",
            "04HMA-SW9MN-D0ZW0-H48SM-8NB6C",
            None,
            ActivationOptions::default()
        )
        .await
        .err(),
        Some(Error::Network)
    );
    // A failed activation leaves no keys behind.
    assert!(auth.hooks.storage.list("").unwrap().is_empty());
    assert_eq!(
        auth.approve("nope", "tx", None).await.err(),
        Some(Error::AccountNotFound)
    );
    assert_eq!(
        auth.answer_offline_qr("garbage").err(),
        Some(Error::InvalidInput { what: "QR code" })
    );
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let auth = authenticator(Arc::new(MemoryStorage::new()));
    let cancel = CancelHandle::new();
    send(&auth.approve("a", "b", None));
    send(&auth.deny("a", "b", DenyReason::NotMe));
    send(&auth.pending(1, &cancel));
    send(&auth.handle_push(&HashMap::new()));
    send(&auth.activate_uri("x", ActivationOptions::default()));
    send(&auth.remove_account("a"));
    send(&auth.update_push_token(PushRegistration::None {}));
    send(&auth.set_pin("a", "123456"));
    send(&auth.change_pin("a", "1", "2"));
    send(&auth.enable_biometric("a"));
}

/// Two authenticators on one store (two processes) counting HOTP codes at
/// once: every code is handed out once, and the counter ends where the number
/// of codes says (no write lost or rolled back).
#[test]
fn two_authenticators_on_one_store_lose_no_write() {
    let storage = Arc::new(MemoryStorage::new());
    let first = Arc::new(authenticator(storage.clone()));
    let second = Arc::new(authenticator(storage));
    let id = first.import_otpauth(RFC_HOTP).unwrap().id;
    let threads: Vec<_> = [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .map(|auth| {
            let id = id.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| auth.otp(&id).unwrap().code.to_string())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut codes: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(codes.len(), 100);
    codes.sort();
    codes.dedup();
    // RFC 4226 codes for counters 0..100 are distinct except by chance; the
    // counter is the real check.
    let exported = second.export_otpauth(&id).unwrap();
    assert!(exported.contains("counter=100"), "{}", exported.as_str());
    assert!(codes.len() >= 99);
}

/// The decoded record another process replaced is never used: the cache
/// follows the stored bytes (a change, a rewrite, a deletion).
#[test]
fn cached_records_follow_the_storage() {
    let storage = Arc::new(MemoryStorage::new());
    let first = authenticator(storage.clone());
    let second = authenticator(storage.clone());
    let id = first.import_otpauth(RFC_HOTP).unwrap().id;
    let key = record::AccountRecord::storage_key(&id);
    // RFC 4226 Appendix D: counters 0, 1, 2, 3.
    assert_eq!(first.otp(&id).unwrap().code.as_str(), "755224");
    // Cached as stored, not ahead of or behind storage.
    let stored = storage.get(&key).unwrap().unwrap();
    assert_eq!(
        first.cache.cached_bytes(&key).unwrap().as_slice(),
        stored.as_slice()
    );
    // Another process moves the counter on: the first one counts from there.
    assert_eq!(second.otp(&id).unwrap().code.as_str(), "287082");
    assert_eq!(first.otp(&id).unwrap().code.as_str(), "359152");
    assert_eq!(second.otp(&id).unwrap().code.as_str(), "969429");

    // Storage rewritten behind both (a restored backup, another version): the
    // new record is what they read.
    let mut rec = record::AccountRecord::parse(&key, &storage.get(&key).unwrap().unwrap()).unwrap();
    rec.label = "renamed".into();
    storage.put(&key, &rec.to_bytes().unwrap()).unwrap();
    assert_eq!(first.account(&id).unwrap().label, "renamed");
    assert_eq!(first.accounts().unwrap()[0].label, "renamed");

    // Deleted behind it: gone, and its entry with it.
    storage.delete(&key).unwrap();
    assert_eq!(first.account(&id).err(), Some(Error::AccountNotFound));
    assert!(first.cache.cached_bytes(&key).is_none());
}

/// Storage whose compare-and-swap can be made to fail or to lose every swap.
struct FlakyWrites {
    inner: MemoryStorage,
    /// 0: works, 1: fails with an I/O error, 2: another writer always wins.
    mode: AtomicU64,
}

impl SecureStorage for FlakyWrites {
    fn get(
        &self,
        key: &str,
    ) -> std::result::Result<Option<zeroize::Zeroizing<Vec<u8>>>, crate::platform::StorageError>
    {
        self.inner.get(key)
    }
    fn put(
        &self,
        key: &str,
        value: &[u8],
    ) -> std::result::Result<(), crate::platform::StorageError> {
        self.inner.put(key, value)
    }
    fn delete(&self, key: &str) -> std::result::Result<(), crate::platform::StorageError> {
        self.inner.delete(key)
    }
    fn list(
        &self,
        prefix: &str,
    ) -> std::result::Result<Vec<String>, crate::platform::StorageError> {
        self.inner.list(prefix)
    }
    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> std::result::Result<bool, crate::platform::StorageError> {
        match self.mode.load(Ordering::SeqCst) {
            0 => self.inner.compare_and_put(key, expected, value),
            1 => Err(crate::platform::StorageError::Io("disk full".into())),
            _ => Ok(false),
        }
    }
}

/// A write that fails, or loses every swap, leaves the cache where storage is:
/// the next call works from the stored record, not the one that was not stored.
#[test]
fn a_failed_write_does_not_move_the_cache_ahead_of_storage() {
    let storage = Arc::new(FlakyWrites {
        inner: MemoryStorage::new(),
        mode: AtomicU64::new(0),
    });
    let auth = authenticator_on(storage.clone());
    let id = auth.import_otpauth(RFC_HOTP).unwrap().id;
    let key = record::AccountRecord::storage_key(&id);
    assert_eq!(auth.otp(&id).unwrap().code.as_str(), "755224");
    for mode in [1, 2] {
        storage.mode.store(mode, Ordering::SeqCst);
        assert_eq!(auth.otp(&id).err(), Some(Error::Storage), "mode {mode}");
        let stored = storage.get(&key).unwrap().unwrap();
        assert_eq!(
            auth.cache.cached_bytes(&key).unwrap().as_slice(),
            stored.as_slice(),
            "mode {mode}"
        );
    }
    // Nothing was stored, so the counter did not move.
    storage.mode.store(0, Ordering::SeqCst);
    assert_eq!(auth.otp(&id).unwrap().code.as_str(), "287082");
    // A fresh authenticator (a restart) agrees.
    assert_eq!(
        authenticator_on(storage).otp(&id).unwrap().code.as_str(),
        "359152"
    );
}

/// An update started from a record read earlier in the call swaps only if
/// storage still holds it; otherwise the change is applied again to what
/// storage holds, as a plain update would (another process wrote meanwhile).
#[test]
fn an_update_from_a_stale_record_is_applied_to_the_stored_one() {
    let storage = Arc::new(MemoryStorage::new());
    let auth = authenticator(storage.clone());
    let id = auth.import_otpauth(RFC_TOTP).unwrap().id;
    let key = record::AccountRecord::storage_key(&id);
    let stale = auth.load(&id).unwrap();
    let first_label = stale.1.label.clone();
    // Another writer (here: another authenticator on the store) came in between.
    authenticator(storage.clone())
        .update(&id, |r| {
            r.label = "renamed".into();
            Ok(())
        })
        .unwrap();
    let ((), stored) = auth
        .update_from(&id, Some(stale.clone()), |r| {
            r.issuer = Some("Moved".into());
            Ok(())
        })
        .unwrap();
    assert_eq!(stored.1.label, "renamed", "the other write is kept");
    assert_eq!(stored.1.issuer.as_deref(), Some("Moved"));
    assert_eq!(
        storage.get(&key).unwrap().unwrap().as_slice(),
        stored.0.as_slice()
    );
    // A change that is no change to the stale record is still one to the
    // stored record: it is written, not skipped.
    let ((), stored) = auth
        .update_from(&id, Some(stale), |r| {
            r.label = first_label.clone();
            Ok(())
        })
        .unwrap();
    assert_eq!(stored.1.label, first_label);
    let reread = auth.load(&id).unwrap();
    assert_eq!(reread.1.label, first_label);
    assert_eq!(reread.1.issuer.as_deref(), Some("Moved"));
    // Chained from what was stored: no storage read needed, same result.
    let ((), chained) = auth
        .update_from(&id, Some(stored), |r| {
            r.issuer = None;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        storage.get(&key).unwrap().unwrap().as_slice(),
        chained.0.as_slice()
    );
    assert_eq!(auth.load(&id).unwrap().1.issuer, None);
}

/// A clock that throws reaches the caller as a typed error.
#[test]
fn a_failing_clock_is_a_typed_error() {
    struct BrokenClock;
    impl Clock for BrokenClock {
        fn now(&self) -> std::result::Result<u64, HookError> {
            Err(HookError("clock exploded".into()))
        }
    }
    let storage = Arc::new(MemoryStorage::new());
    let auth = authenticator(storage.clone());
    let totp = auth.import_otpauth(RFC_TOTP).unwrap();
    let hooks = PlatformHooks {
        clock: Arc::new(BrokenClock),
        ..auth.hooks.clone()
    };
    let broken = Authenticator::new(hooks, AuthenticatorConfig::new(Platform::Desktop)).unwrap();
    assert_eq!(broken.otp(&totp.id).err(), Some(Error::HookFailed));
}

/// A user who types the same PIN at every prompt.
struct TypesPin(&'static str);

#[async_trait::async_trait]
impl UserVerifier for TypesPin {
    async fn verify(
        &self,
        _: VerificationPrompt,
    ) -> std::result::Result<VerificationOutcome, HookError> {
        Ok(VerificationOutcome::Verified {
            pin: Some(zeroize::Zeroizing::new(self.0.to_owned())),
        })
    }
}

/// Records written before Du and the seed moved to the vault (software Du
/// scalar in `plain` / the wraps, the seed and the otpauth URI inline) load and
/// work exactly as before: codes, setting a PIN, unlocking Du in software,
/// HOTP advancing inline.
#[tokio::test]
async fn legacy_records_with_a_software_du_and_inline_seed_still_work() {
    use super::record::{
        AccountRecord, RECORD_VERSION, Secret, test_push_account, test_push_record,
    };
    use crate::crypto::SigningKey;
    use crate::otp::TotpParams;
    use crate::protocol::MessageSigner;
    use crate::protocol::encoding::b64url;

    let storage = Arc::new(MemoryStorage::new());
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage.clone())),
        verifier: Arc::new(TypesPin("135790")),
        http: Arc::new(NoNetwork),
        clock: Arc::new(FixedClock(AtomicU64::new(59))),
        logger: Arc::new(NoopLogger),
    };
    let auth = Authenticator::new(hooks, AuthenticatorConfig::new(Platform::Desktop)).unwrap();

    // The old shape: `seed` inline, Du's scalar in `plain`, no vault alias.
    let du = SigningKey::generate().unwrap();
    let mut p = test_push_account();
    p.user_key.public = b64url(&du.public_key().to_sec1());
    p.user_key.plain = Some(Secret::new(du.to_bytes().as_slice()));
    let rec = test_push_record(p);
    let json: serde_json::Value = serde_json::from_slice(&rec.to_bytes().unwrap()).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&json["kind"]["user_key"]), ["plain", "public"]);
    assert!(json["kind"]["seed"].is_string());
    assert!(json["kind"].get("sealed_seed").is_none());
    let key = AccountRecord::storage_key("a1");
    storage
        .put(&key, &serde_json::to_vec(&json).unwrap())
        .unwrap();

    // Codes from the inline seed.
    let params = TotpParams::new(crate::protocol::OtpAlgorithm::Sha1.hmac(), 6, 30).unwrap();
    let want = crate::otp::totp_at(&params, &[7; 20], 59).unwrap();
    assert_eq!(auth.otp("a1").unwrap().code.as_str(), want);

    // A PIN over the plain scalar: it is wrapped, the plain copy goes.
    auth.set_pin("a1", "135790").await.unwrap();
    let stored: serde_json::Value =
        serde_json::from_slice(&storage.get(&key).unwrap().unwrap()).unwrap();
    assert_eq!(keys(&stored["kind"]["user_key"]), ["pin", "public"]);
    assert!(stored["kind"]["seed"].is_string());
    // The PIN unlocks the software Du, which signs as the old key.
    let (unlocked, how) = auth.unlock_user_key("a1", "test").await.unwrap();
    assert_eq!(how, crate::protocol::Verification::Pin);
    assert!(matches!(unlocked, userkey::UserKey::Software(_)));
    assert_eq!(MessageSigner::public_key(&unlocked), du.public_key());
    let sig = unlocked.sign(b"message").unwrap();
    du.public_key().verify(b"message", &sig).unwrap();
    // And changes like before (the scalar is checked against the public key).
    auth.change_pin("a1", "135790", "246802").await.unwrap();
    assert_eq!(
        auth.change_pin("a1", "135790", "111111").await.err(),
        Some(Error::WrongPin { attempts_left: 9 })
    );
    // No vault key was made for it.
    assert!(storage.list("vault/").unwrap().is_empty());

    // A legacy otpauth account: the URI inline; HOTP advances inline.
    let legacy_otp = serde_json::json!({
        "v": RECORD_VERSION, "id": "o1", "label": "bob", "created": 0,
        "kind": { "type": "otpauth", "uri": b64url(RFC_HOTP.as_bytes()) },
    });
    storage
        .put(
            &AccountRecord::storage_key("o1"),
            &serde_json::to_vec(&legacy_otp).unwrap(),
        )
        .unwrap();
    assert_eq!(auth.otp("o1").unwrap().code.as_str(), "755224");
    assert_eq!(auth.otp("o1").unwrap().code.as_str(), "287082");
    let stored: serde_json::Value = serde_json::from_slice(
        &storage
            .get(&AccountRecord::storage_key("o1"))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(stored["kind"]["uri"].is_string());
    assert!(stored["kind"].get("sealed_uri").is_none());
    assert!(auth.export_otpauth("o1").unwrap().contains("counter=2"));
    auth.forget_account("o1").unwrap();
    auth.forget_account("a1").unwrap();
    assert!(storage.list("").unwrap().is_empty());
}

/// New otpauth accounts keep their URI sealed by a vault key, which goes with
/// the account; a blob moved to another account does not open.
#[test]
fn imported_uris_are_sealed_in_the_vault() {
    use super::record::AccountRecord;
    let storage = Arc::new(MemoryStorage::new());
    let auth = authenticator(storage.clone());
    let a = auth.import_otpauth(RFC_TOTP).unwrap();
    let b = auth.import_otpauth(RFC_HOTP).unwrap();
    let read = |id: &str| -> serde_json::Value {
        serde_json::from_slice(
            &storage
                .get(&AccountRecord::storage_key(id))
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    let ra = read(&a.id);
    assert!(ra["kind"].get("uri").is_none());
    assert_eq!(
        ra["kind"]["sealed_uri"]["alias"],
        format!("cs.{}.seed", a.id)
    );
    let text = String::from_utf8(
        storage
            .get(&AccountRecord::storage_key(&a.id))
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(!text.contains("GEZDGNBV"));
    assert!(
        storage
            .get(&format!("vault/cs.{}.seed", a.id))
            .unwrap()
            .is_some()
    );
    // b's record with a's blob (same alias scheme, other account): refused.
    let mut rb = read(&b.id);
    rb["kind"]["sealed_uri"] = ra["kind"]["sealed_uri"].clone();
    storage
        .put(
            &AccountRecord::storage_key(&b.id),
            &serde_json::to_vec(&rb).unwrap(),
        )
        .unwrap();
    assert_eq!(auth.otp(&b.id).err(), Some(Error::Storage));
    auth.forget_account(&a.id).unwrap();
    assert!(
        storage
            .get(&format!("vault/cs.{}.seed", a.id))
            .unwrap()
            .is_none()
    );
}
