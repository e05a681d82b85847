//! Every private key of a push account in the vault (issue 13): the KEM keys K
//! are created in the [`KeyVault`], challenges and the activation seed open
//! through [`KeyVault::ecdh`], and the account record holds only aliases and
//! public keys.
//!
//! The device here runs on recording wrappers: a vault around the
//! [`SoftwareKeyVault`] that remembers every private scalar it created (it is
//! the test's own vault, so it may peek into its slots; a platform vault could
//! not) and every call, and a storage that records every write. The
//! [`KeyVault`] trait itself only ever hands the core public keys
//! (`create_key`, `public_key`), signatures (`sign`) and ECDH shared secrets
//! (`ecdh`): it has no method that returns private key bytes, so the core can
//! hold K's private key only if it creates it itself. The scan of every value
//! written outside the vault's own `vault/` slots shows it does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use countersign_core::Error;
use countersign_core::authenticator::{AccountInfo, AccountKind, ActivationOptions, MAX_KEM_KEYS};
use countersign_core::crypto::{AgreementKey, PublicKey, Signature};
use countersign_core::platform::{
    KeyPurpose, KeySpec, KeyVault, KeyVaultError, SecureStorage, SoftwareKeyVault, StorageError,
};
use countersign_core::protocol::encoding::b64url;
use countersign_core::protocol::{DenyReason, SealedChallenge, SignedMessage, Verification};
use countersign_e2e::{Answer, Device, open_device_with, start_server};
use countersign_test_support::{RpClient, TempDir, temp_dir};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// What the device did with its storage and its vault, in order.
#[derive(Debug, Clone)]
enum Event {
    /// A value written (`put`, or a `compare_and_put` that swapped).
    Put { key: String, value: Vec<u8> },
    /// A storage key deleted.
    Remove { key: String },
    /// A vault key created.
    Create {
        alias: String,
        spec: KeySpec,
        scalar: Vec<u8>,
    },
    /// A vault ECDH.
    Ecdh { alias: String, peer: PublicKey },
    /// A vault signature.
    Sign { alias: String },
    /// A vault sealing key created (the test peeks at its AES key).
    CreateSealing { alias: String, key: Vec<u8> },
    /// Something sealed.
    Seal { alias: String, plaintext: Vec<u8> },
    /// Something opened.
    Open { alias: String },
    /// A vault key deleted.
    Delete { alias: String },
}

type Log = Arc<Mutex<Vec<Event>>>;

/// The device's storage, recording every successful write; it can be told to
/// fail record writes (`acct/`), as a full disk would.
struct RecordingStorage {
    inner: Arc<dyn SecureStorage>,
    log: Log,
    fail_records: AtomicBool,
}

impl RecordingStorage {
    fn failing(&self, key: &str) -> Result<(), StorageError> {
        if self.fail_records.load(Ordering::SeqCst) && key.starts_with("acct/") {
            return Err(StorageError::Io("test fault".into()));
        }
        Ok(())
    }

    fn wrote(&self, key: &str, value: &[u8]) {
        self.log.lock().unwrap().push(Event::Put {
            key: key.to_owned(),
            value: value.to_vec(),
        });
    }
}

impl SecureStorage for RecordingStorage {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        self.inner.get(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.failing(key)?;
        self.inner.put(key, value)?;
        self.wrote(key, value);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)?;
        self.log.lock().unwrap().push(Event::Remove {
            key: key.to_owned(),
        });
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix)
    }

    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StorageError> {
        self.failing(key)?;
        let swapped = self.inner.compare_and_put(key, expected, value)?;
        if swapped {
            self.wrote(key, value);
        }
        Ok(swapped)
    }
}

/// The test's vault: a [`SoftwareKeyVault`] on the device's storage, peeking
/// at the scalar of every key it creates and logging every call.
struct RecordingVault {
    inner: SoftwareKeyVault,
    storage: Arc<dyn SecureStorage>,
    log: Log,
}

impl KeyVault for RecordingVault {
    fn create_key(&self, alias: &str, spec: KeySpec) -> Result<PublicKey, KeyVaultError> {
        let public = self.inner.create_key(alias, spec)?;
        // Peek: SoftwareKeyVault's slot is purpose tag, UV flag, 32-byte scalar.
        let blob = self
            .storage
            .get(&format!("vault/{alias}"))
            .unwrap()
            .unwrap();
        assert_eq!(blob.len(), 34);
        let scalar = blob[2..].to_vec();
        if spec.purpose == KeyPurpose::KeyAgreement {
            let key = AgreementKey::from_bytes(&scalar).unwrap();
            assert_eq!(key.public_key(), public, "peeked the right scalar");
        }
        self.log.lock().unwrap().push(Event::Create {
            alias: alias.to_owned(),
            spec,
            scalar,
        });
        Ok(public)
    }

    fn public_key(&self, alias: &str) -> Result<Option<PublicKey>, KeyVaultError> {
        self.inner.public_key(alias)
    }

    fn sign(&self, alias: &str, message: &[u8]) -> Result<Signature, KeyVaultError> {
        let signature = self.inner.sign(alias, message)?;
        self.log.lock().unwrap().push(Event::Sign {
            alias: alias.to_owned(),
        });
        Ok(signature)
    }

    fn ecdh(&self, alias: &str, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, KeyVaultError> {
        let shared = self.inner.ecdh(alias, peer)?;
        self.log.lock().unwrap().push(Event::Ecdh {
            alias: alias.to_owned(),
            peer: peer.clone(),
        });
        Ok(shared)
    }

    fn delete_key(&self, alias: &str) -> Result<(), KeyVaultError> {
        self.inner.delete_key(alias)?;
        self.log.lock().unwrap().push(Event::Delete {
            alias: alias.to_owned(),
        });
        Ok(())
    }

    fn create_sealing_key(&self, alias: &str) -> Result<(), KeyVaultError> {
        self.inner.create_sealing_key(alias)?;
        // Peek: purpose tag 3, UV flag, the 32-byte AES key.
        let blob = self
            .storage
            .get(&format!("vault/{alias}"))
            .unwrap()
            .unwrap();
        assert_eq!((blob.len(), blob[0]), (34, 3));
        self.log.lock().unwrap().push(Event::CreateSealing {
            alias: alias.to_owned(),
            key: blob[2..].to_vec(),
        });
        Ok(())
    }

    fn seal(&self, alias: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyVaultError> {
        let blob = self.inner.seal(alias, aad, plaintext)?;
        self.log.lock().unwrap().push(Event::Seal {
            alias: alias.to_owned(),
            plaintext: plaintext.to_vec(),
        });
        Ok(blob)
    }

    fn open(
        &self,
        alias: &str,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyVaultError> {
        let opened = self.inner.open(alias, aad, blob)?;
        self.log.lock().unwrap().push(Event::Open {
            alias: alias.to_owned(),
        });
        Ok(opened)
    }
}

/// A device on recording wrappers.
struct Recorded {
    dev: Device,
    log: Log,
    storage: Arc<RecordingStorage>,
    vault: Arc<RecordingVault>,
    _dir: TempDir,
}

fn recorded_device(name: &str) -> Recorded {
    let dir = temp_dir(name);
    let log: Log = Arc::default();
    let mut parts = None;
    let dev = open_device_with(
        dir.path(),
        |_| {},
        |file| {
            let storage = Arc::new(RecordingStorage {
                inner: file,
                log: log.clone(),
                fail_records: AtomicBool::new(false),
            });
            let vault = Arc::new(RecordingVault {
                inner: SoftwareKeyVault::new(storage.clone()),
                storage: storage.clone(),
                log: log.clone(),
            });
            parts = Some((storage.clone(), vault.clone()));
            (storage, vault)
        },
    );
    let (storage, vault) = parts.unwrap();
    Recorded {
        dev,
        log,
        storage,
        vault,
        _dir: dir,
    }
}

impl Recorded {
    fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// KEM keys created so far: alias → (public key, scalar).
    fn kem_keys_created(&self) -> BTreeMap<String, (PublicKey, Vec<u8>)> {
        let mut out = BTreeMap::new();
        for e in self.events() {
            if let Event::Create {
                alias,
                spec,
                scalar,
            } = e
                && spec.purpose == KeyPurpose::KeyAgreement
                && alias.contains(".kem.")
            {
                assert!(!spec.user_verification);
                let public = AgreementKey::from_bytes(&scalar).unwrap().public_key();
                out.insert(alias, (public, scalar));
            }
        }
        out
    }

    /// Every vault key created so far (any kind): alias → spec (`None`: a
    /// sealing key).
    fn all_created(&self) -> BTreeMap<String, Option<KeySpec>> {
        let mut out = BTreeMap::new();
        for e in self.events() {
            match e {
                Event::Create { alias, spec, .. } => {
                    out.insert(alias, Some(spec));
                }
                Event::CreateSealing { alias, .. } => {
                    out.insert(alias, None);
                }
                _ => {}
            }
        }
        out
    }

    /// How many times the vault signed with `alias`.
    fn signatures_by(&self, alias: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Sign { alias: a } if a == alias))
            .count()
    }

    /// How many times the vault sealed something with `alias`.
    fn seals_by(&self, alias: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Seal { alias: a, .. } if a == alias))
            .count()
    }

    /// How many times the vault opened something sealed by `alias`.
    fn opens_by(&self, alias: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Open { alias: a } if a == alias))
            .count()
    }

    /// The stored record of account `id`, as JSON.
    fn record(&self, id: &str) -> Value {
        serde_json::from_slice(&self.storage.get(&format!("acct/{id}")).unwrap().unwrap()).unwrap()
    }

    fn deleted(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Delete { alias } => Some(alias),
                _ => None,
            })
            .collect()
    }

    fn ecdh_calls(&self) -> Vec<(String, PublicKey)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Ecdh { alias, peer } => Some((alias, peer)),
                _ => None,
            })
            .collect()
    }

    /// KEM vault keys of account `id` created and not deleted.
    fn live_kem_aliases(&self, id: &str) -> Vec<String> {
        let deleted = self.deleted();
        self.kem_keys_created()
            .into_keys()
            .filter(|a| a.starts_with(&format!("cs.{id}.kem.")) && !deleted.contains(a))
            .collect()
    }

    /// The `(kem_kid, enc)` of the challenge `tx` as fetched.
    fn sealed_to(&self, tx: &str) -> (String, PublicKey) {
        let raw = self.dev.wire.envelopes.lock().unwrap()[tx].clone();
        let msg = SignedMessage::from_json(&raw).unwrap();
        let sealed = SealedChallenge::from_payload(msg.payload_unverified()).unwrap();
        (
            sealed.header().kem_kid.clone(),
            PublicKey::from_sec1(&sealed.sealed().enc).unwrap(),
        )
    }

    /// Checks the whole history: no value written outside `vault/` holds any
    /// private scalar the vault created (raw, base64url, hex); a KEM key is
    /// created before any written value names it, and deleted only when no
    /// stored value names it (and none names it later).
    fn check_history(&self) {
        let events = self.events();
        // Every private scalar and sealing key, and every sealed plaintext.
        let scalars: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| match e {
                Event::Create { scalar, .. } => Some(scalar.clone()),
                Event::CreateSealing { key, .. } => Some(key.clone()),
                Event::Seal { plaintext, .. } => Some(plaintext.clone()),
                _ => None,
            })
            .collect();
        assert!(!scalars.is_empty());
        let mut stored: HashMap<String, Vec<u8>> = HashMap::new();
        let mut created: Vec<String> = Vec::new();
        let mut deleted: Vec<String> = Vec::new();
        let mut puts = 0;
        for e in &events {
            match e {
                Event::Put { key, value } if !key.starts_with("vault/") => {
                    puts += 1;
                    for s in &scalars {
                        assert!(!contains(value, s), "{key} holds a raw private scalar");
                        for text in [b64url(s), hex(s), hex(s).to_uppercase()] {
                            assert!(
                                !contains(value, text.as_bytes()),
                                "{key} holds an encoded private scalar"
                            );
                        }
                    }
                    let text = String::from_utf8_lossy(value);
                    for alias in names_of_kem_keys(&text) {
                        assert!(
                            created.contains(&alias),
                            "{key} names {alias} before the vault created it"
                        );
                        assert!(
                            !deleted.contains(&alias),
                            "{key} names {alias} after it was deleted"
                        );
                    }
                    stored.insert(key.clone(), value.clone());
                }
                Event::Put { .. } => {}
                Event::Remove { key } => {
                    stored.remove(key);
                }
                Event::Create { alias, .. } | Event::CreateSealing { alias, .. } => {
                    created.push(alias.clone());
                }
                Event::Delete { alias } => {
                    for (key, value) in &stored {
                        assert!(
                            !contains(value, alias.as_bytes()),
                            "{alias} deleted while {key} still names it"
                        );
                    }
                    deleted.push(alias.clone());
                }
                Event::Ecdh { .. }
                | Event::Sign { .. }
                | Event::Seal { .. }
                | Event::Open { .. } => {}
            }
        }
        assert!(puts > 0);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every `cs.<id>.kem.<hex>` alias in a stored text.
fn names_of_kem_keys(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("cs.") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        if word.contains(".kem.") {
            out.push(word.to_owned());
        }
        rest = &tail[3..];
    }
    out
}

fn device_id(acct: &AccountInfo) -> String {
    match &acct.kind {
        AccountKind::Push { device_id, .. } => device_id.clone(),
        AccountKind::Otp => panic!("not a push account"),
    }
}

fn push_data(device: &str, tx: &str) -> HashMap<String, String> {
    HashMap::from([
        ("device_id".to_owned(), device.to_owned()),
        ("tx_id".to_owned(), tx.to_owned()),
    ])
}

async fn start_push(rp: &RpClient, user: &str) -> String {
    let v = rp
        .start_push(json!({ "user": user, "number_matching": "off" }))
        .await;
    v["tx_id"].as_str().unwrap().to_owned()
}

/// Receives push `tx` and checks it opened through exactly one vault ECDH,
/// with the vault key of the KEM key it was sealed to and its `enc`.
async fn receive_through_the_vault(r: &Recorded, acct: &AccountInfo, tx: &str) {
    let before = r.ecdh_calls().len();
    r.dev
        .auth
        .handle_push(&push_data(&device_id(acct), tx))
        .await
        .unwrap();
    let calls = r.ecdh_calls();
    assert_eq!(calls.len(), before + 1, "one ECDH per challenge");
    let (alias, peer) = calls.last().unwrap();
    let (kid, enc) = r.sealed_to(tx);
    assert_eq!(*peer, enc);
    let created = r.kem_keys_created();
    assert_eq!(created[alias].0.key_id(), kid, "the key it was sealed to");
}

/// A server, and a recorded device (storage `name`) with alice's account activated.
async fn activated_recorded_device(
    name: &str,
) -> (
    countersign_test_support::TestServer,
    RpClient,
    Recorded,
    AccountInfo,
) {
    let s = start_server(|_| {}).await;
    let rp = s.rp("Example Bank").await;
    let r = recorded_device(name);
    let uri = rp.enroll("alice").await.uri;
    let acct = r
        .dev
        .auth
        .activate_uri(&uri, ActivationOptions::default())
        .await
        .unwrap();
    (s, rp, r, acct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kem_keys_live_in_the_vault_and_retired_ones_are_deleted() {
    let (s, rp, r, acct) = activated_recorded_device("vault-kem").await;

    // Activation: K was created in the vault (key agreement, no UV) under the
    // account's alias, and the seed opened through it.
    let created = r.kem_keys_created();
    assert_eq!(created.len(), 1);
    let (k0, (k0_public, _)) = created.iter().next().unwrap();
    assert!(k0.starts_with(&format!("cs.{}.kem.", acct.id)), "{k0}");
    let calls = r.ecdh_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(&calls[0].0, k0);
    assert_eq!(
        r.dev.auth.kem_key_ids(&acct.id).unwrap(),
        [k0_public.key_id()]
    );

    // Push after push, approved or denied: each opens through the vault, each
    // answer creates the next key there. Beyond MAX_KEM_KEYS (all still in
    // their grace period) the oldest go, from the record and then the vault.
    let rounds = MAX_KEM_KEYS + 4;
    for i in 0..rounds {
        let tx = start_push(&rp, "alice").await;
        receive_through_the_vault(&r, &acct, &tx).await;
        // One denial among the approvals (a few in a row would slow pushes).
        if i != 1 {
            r.dev.auth.approve(&acct.id, &tx, None).await.unwrap();
        } else {
            r.dev
                .auth
                .deny(&acct.id, &tx, DenyReason::Mistake)
                .await
                .unwrap();
        }
        // The record's keys are exactly the live vault keys.
        let kids = r.dev.auth.kem_key_ids(&acct.id).unwrap();
        let live = r.live_kem_aliases(&acct.id);
        assert_eq!(kids.len(), live.len(), "round {i}");
        assert!(kids.len() <= MAX_KEM_KEYS);
        let created = r.kem_keys_created();
        for alias in &live {
            assert!(kids.contains(&created[alias].0.key_id()));
            assert!(r.vault.public_key(alias).unwrap().is_some());
        }
    }
    assert_eq!(r.kem_keys_created().len(), rounds + 1);
    assert_eq!(r.live_kem_aliases(&acct.id).len(), MAX_KEM_KEYS);
    assert_eq!(r.deleted().len(), rounds + 1 - MAX_KEM_KEYS);
    // The oldest went first.
    assert!(r.deleted().contains(k0));
    // Every challenge (and the seed) opened through the vault.
    assert_eq!(r.ecdh_calls().len(), rounds + 1);

    // A failed record write after the next key was created: the answer is not
    // stored, and the key no record names is deleted again.
    let tx = start_push(&rp, "alice").await;
    receive_through_the_vault(&r, &acct, &tx).await;
    let kids = r.dev.auth.kem_key_ids(&acct.id).unwrap();
    r.storage.fail_records.store(true, Ordering::SeqCst);
    assert_eq!(
        r.dev.auth.approve(&acct.id, &tx, None).await.err(),
        Some(Error::Storage)
    );
    r.storage.fail_records.store(false, Ordering::SeqCst);
    let newest = r.kem_keys_created().len();
    assert_eq!(newest, rounds + 2, "a key was created for the answer");
    assert_eq!(r.dev.auth.kem_key_ids(&acct.id).unwrap(), kids);
    assert_eq!(r.live_kem_aliases(&acct.id).len(), kids.len());
    // The request is still there to answer.
    r.dev.auth.approve(&acct.id, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");

    // Removing the account deletes every vault key it had.
    r.dev.auth.remove_account(&acct.id).await.unwrap();
    assert!(r.live_kem_aliases(&acct.id).is_empty());
    let dp = format!("cs.{}.dp", acct.id);
    assert!(r.deleted().contains(&dp));

    r.check_history();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_an_inline_kem_scalar_still_opens_challenges() {
    let (s, rp, r, acct) = activated_recorded_device("vault-legacy").await;

    // Turn the record into what the previous version wrote: each KEM key as
    // `{kid, scalar}` (base64url scalar inline), and no vault key for it.
    let key = format!("acct/{}", acct.id);
    let mut rec: Value = serde_json::from_slice(&r.storage.get(&key).unwrap().unwrap()).unwrap();
    let created = r.kem_keys_created();
    let keys = rec["kind"]["kem_keys"].as_array_mut().unwrap();
    assert_eq!(keys.len(), 1);
    let alias = keys[0]["alias"].as_str().unwrap().to_owned();
    let (public, scalar) = &created[&alias];
    assert_eq!(keys[0]["kid"], public.key_id());
    keys[0] = json!({ "kid": public.key_id(), "scalar": b64url(scalar) });
    r.storage
        .put(&key, &serde_json::to_vec(&rec).unwrap())
        .unwrap();
    r.vault.delete_key(&alias).unwrap();

    // It loads, and the challenge sealed to that key opens with the inline
    // scalar (no vault ECDH: there is no vault key).
    let tx = start_push(&rp, "alice").await;
    r.dev
        .auth
        .handle_push(&push_data(&device_id(&acct), &tx))
        .await
        .unwrap();
    assert_eq!(r.ecdh_calls().len(), 1, "only the activation's");
    assert_eq!(r.sealed_to(&tx).0, public.key_id());
    // The answer rotates to a vault key; the legacy key stays (grace period)
    // and is never a vault deletion.
    r.dev.auth.approve(&acct.id, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");
    let kids = r.dev.auth.kem_key_ids(&acct.id).unwrap();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], public.key_id());
    let rec: Value = serde_json::from_slice(&r.storage.get(&key).unwrap().unwrap()).unwrap();
    let keys = rec["kind"]["kem_keys"].as_array().unwrap();
    assert!(keys[0].get("scalar").is_some() && keys[0].get("alias").is_none());
    assert!(keys[1].get("scalar").is_none() && keys[1].get("alias").is_some());

    // The next challenge is sealed to the new key and opens through the vault.
    let tx = start_push(&rp, "alice").await;
    receive_through_the_vault(&r, &acct, &tx).await;
    r.dev.auth.approve(&acct.id, &tx, None).await.unwrap();
    assert_eq!(rp.status(&tx).await["state"], "approved");

    // Forgetting the account deletes the vault keys it names (the legacy one
    // has none).
    r.dev.auth.forget_account(&acct.id).unwrap();
    assert!(r.live_kem_aliases(&acct.id).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn du_and_the_seed_live_in_the_vault() {
    let (s, rp, r, acct) = activated_recorded_device("vault-du-seed").await;
    let id = acct.id.clone();
    let du = format!("cs.{id}.du");
    let seed = format!("cs.{id}.seed");
    let bio = format!("cs.{id}.bio");

    // Du is a vault signing key, not bound to user verification (it serves
    // the PIN and biometrics); the seed has a sealing key.
    let created = r.all_created();
    assert_eq!(
        created[&du],
        Some(KeySpec {
            purpose: KeyPurpose::Signing,
            user_verification: false
        })
    );
    assert_eq!(created[&seed], None);
    assert_eq!(r.seals_by(&seed), 1, "the seed was sealed once");
    // Du signed the activation's proof of possession.
    assert_eq!(r.signatures_by(&du), 1);

    // The record names Du and the sealed seed; no scalar, no inline seed, and
    // with no PIN or biometrics set up nothing secret for Du at all.
    let rec = r.record(&id);
    let p = &rec["kind"];
    assert_eq!(p["user_key"]["vault_alias"], du.as_str());
    assert_eq!(
        p["user_key"]["public"],
        b64url(&r.vault.public_key(&du).unwrap().unwrap().to_sec1())
    );
    for absent in ["plain", "pin", "bio"] {
        assert!(p["user_key"].get(absent).is_none(), "{absent}");
    }
    assert!(p.get("seed").is_none());
    assert_eq!(p["sealed_seed"]["alias"], seed.as_str());

    // Codes open the seed through the vault.
    let opens = r.opens_by(&seed);
    let code = r.dev.auth.otp(&id).unwrap();
    assert_eq!(code.code.len(), 6);
    assert_eq!(r.opens_by(&seed), opens + 1);

    // A PIN set with nothing to unwrap (no prompt), then an approval that
    // needs it: the PIN opens its wrap, Du signs in the vault, and the push
    // OTP comes from the sealed seed. The server accepts Du's signature.
    r.dev.auth.set_pin(&id, "135790").await.unwrap();
    assert!(r.dev.user.prompt_kinds().is_empty());
    let rec = r.record(&id);
    assert!(rec["kind"]["user_key"]["pin"].is_object());
    assert!(rec["kind"]["user_key"].get("plain").is_none());
    let verified_push = |level: &'static str| {
        let rp = &rp;
        async move {
            let v = rp
                .start_push(
                    json!({ "user": "alice", "number_matching": "off", "verification": level }),
                )
                .await;
            v["tx_id"].as_str().unwrap().to_owned()
        }
    };
    let tx = verified_push("pin").await;
    receive_through_the_vault(&r, &acct, &tx).await;
    let (signed, opened) = (r.signatures_by(&du), r.opens_by(&seed));
    r.dev.user.will([Answer::Pin("135790".into())]);
    let out = r.dev.auth.approve(&id, &tx, None).await.unwrap();
    assert_eq!(out.verification, Verification::Pin);
    assert_eq!(rp.status(&tx).await["state"], "approved");
    assert_eq!(r.signatures_by(&du), signed + 1);
    assert_eq!(r.opens_by(&seed), opened + 1);

    // A wrong PIN is still counted.
    let tx = verified_push("pin").await;
    receive_through_the_vault(&r, &acct, &tx).await;
    r.dev.user.will([Answer::Pin("000000".into())]);
    assert!(matches!(
        r.dev.auth.approve(&id, &tx, None).await,
        Err(Error::WrongPin { .. })
    ));
    assert_eq!(r.dev.auth.account(&id).unwrap().pin_failures, 1);
    // Biometrics (after the PIN), then an approval with them.
    r.dev.user.will([Answer::Pin("135790".into())]);
    r.dev.auth.enable_biometric(&id).await.unwrap();
    assert_eq!(
        r.all_created()[&bio],
        Some(KeySpec {
            purpose: KeyPurpose::KeyAgreement,
            user_verification: true
        })
    );
    r.dev.user.will([Answer::Biometric]);
    let out = r.dev.auth.approve(&id, &tx, None).await.unwrap();
    assert_eq!(out.verification, Verification::Biometric);
    assert_eq!(rp.status(&tx).await["state"], "approved");
    // The PIN changes and still unlocks.
    r.dev
        .auth
        .change_pin(&id, "135790", "246802")
        .await
        .unwrap();
    assert_eq!(
        r.dev.auth.change_pin(&id, "135790", "111111").await.err(),
        Some(Error::WrongPin { attempts_left: 9 })
    );
    r.dev
        .auth
        .change_pin(&id, "246802", "135790")
        .await
        .unwrap();

    // Imported otpauth accounts keep their URI sealed too; HOTP advances.
    let hotp = "otpauth://hotp/Example:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&counter=0";
    let o = r.dev.auth.import_otpauth(hotp).unwrap();
    let orec = r.record(&o.id);
    assert!(orec["kind"].get("uri").is_none());
    assert_eq!(
        orec["kind"]["sealed_uri"]["alias"],
        format!("cs.{}.seed", o.id)
    );
    for want in ["755224", "287082", "359152"] {
        assert_eq!(r.dev.auth.otp(&o.id).unwrap().code.as_str(), want);
    }
    assert!(
        r.dev
            .auth
            .export_otpauth(&o.id)
            .unwrap()
            .contains("counter=3")
    );
    r.dev.auth.forget_account(&o.id).unwrap();
    assert!(r.deleted().contains(&format!("cs.{}.seed", o.id)));

    // Removing the account deletes Du, the biometric key and the seed's key.
    r.dev.auth.remove_account(&id).await.unwrap();
    let deleted = r.deleted();
    for alias in [&du, &seed, &bio, &format!("cs.{id}.dp")] {
        assert!(deleted.contains(alias), "{alias}");
        assert!(r.storage.get(&format!("vault/{alias}")).unwrap().is_none());
    }
    r.check_history();
    s.stop().await;
}
