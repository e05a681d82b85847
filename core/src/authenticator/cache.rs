//! Decoded account records kept between calls, each beside the stored bytes
//! it was decoded from.
//!
//! Decoding a record (JSON through serde) cost more than the rest of handling
//! a push or an approval apart from the cryptography, and every call reads the
//! record several times. The storage stays the truth, as for the software
//! vault's parsed keys: every read still gets the record's bytes from
//! [`SecureStorage`](crate::platform::SecureStorage), and a cached record is
//! used only when those bytes equal the ones it was decoded from (compared in
//! constant time: records hold secrets). A record another process changed or
//! deleted is therefore never used stale; it is decoded again.
//!
//! An entry is added when a record is decoded and when the core's own
//! compare-and-swap has stored a new record, never before: a write that failed
//! or lost the swap leaves the cache as it was. Cached bytes and the records'
//! secrets are zeroized when dropped. The lock is held only to copy an entry in
//! or out, never while a hook runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use zeroize::Zeroizing;

use super::record::AccountRecord;
use crate::crypto::ct_eq;

/// Records kept at most (a phone holds a few accounts); past it the cache
/// starts again empty.
const MAX_CACHED_RECORDS: usize = 64;

/// Stored bytes of a record, shared between the cache and a call using them.
pub(super) type StoredBytes = Arc<Zeroizing<Vec<u8>>>;

/// A decoded record and the stored bytes it was decoded from.
#[derive(Clone)]
struct Entry {
    bytes: StoredBytes,
    record: Arc<AccountRecord>,
}

/// Decoded records by storage key. See the [module docs](self).
#[derive(Default)]
pub(super) struct RecordCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl RecordCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every operation is one map call: a panic elsewhere cannot leave the
        // map half-changed, so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record cached under `key` if it was decoded from exactly `stored`
    /// (the bytes storage holds now), with the cached copy of those bytes.
    pub(super) fn get(
        &self,
        key: &str,
        stored: &[u8],
    ) -> Option<(StoredBytes, Arc<AccountRecord>)> {
        let entry = self.entries().get(key).cloned()?;
        ct_eq(entry.bytes.as_slice(), stored).then_some((entry.bytes, entry.record))
    }

    /// Remembers that `key` holds `bytes`, which decode to `record`. Call it
    /// only once storage holds them.
    pub(super) fn remember(&self, key: &str, bytes: StoredBytes, record: Arc<AccountRecord>) {
        let old = {
            let mut entries = self.entries();
            if entries.len() >= MAX_CACHED_RECORDS && !entries.contains_key(key) {
                entries.clear();
            }
            entries.insert(key.to_owned(), Entry { bytes, record })
        };
        drop(old);
    }

    /// Drops the entry of `key` (the record was deleted): its secrets leave
    /// memory now rather than at the next read.
    pub(super) fn forget(&self, key: &str) {
        let old = self.entries().remove(key);
        drop(old);
    }

    /// The bytes cached under `key`, for tests.
    #[cfg(test)]
    pub(super) fn cached_bytes(&self, key: &str) -> Option<StoredBytes> {
        self.entries().get(key).map(|e| e.bytes.clone())
    }

    /// How many records are cached, for tests.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::record::{test_push_account, test_push_record};

    fn stored(rec: &AccountRecord) -> StoredBytes {
        Arc::new(rec.to_bytes().unwrap())
    }

    #[test]
    fn an_entry_is_used_only_for_the_bytes_it_was_decoded_from() {
        let cache = RecordCache::default();
        let rec = test_push_record(test_push_account());
        let bytes = stored(&rec);
        assert!(cache.get("acct/a1", &bytes).is_none());
        cache.remember("acct/a1", bytes.clone(), Arc::new(rec.clone()));
        let (same, hit) = cache.get("acct/a1", &bytes).unwrap();
        assert!(Arc::ptr_eq(&same, &bytes));
        assert_eq!(hit.label, "alice");
        // Other bytes under the key (another process wrote): no hit.
        let mut changed = rec.clone();
        changed.label = "bob".into();
        assert!(cache.get("acct/a1", &stored(&changed)).is_none());
        // Nor under another key.
        assert!(cache.get("acct/a2", &bytes).is_none());
        cache.forget("acct/a1");
        assert!(cache.get("acct/a1", &bytes).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = RecordCache::default();
        let rec = Arc::new(test_push_record(test_push_account()));
        let bytes = stored(&rec);
        for i in 0..MAX_CACHED_RECORDS + 3 {
            cache.remember(&format!("acct/{i}"), bytes.clone(), rec.clone());
            assert!(cache.len() <= MAX_CACHED_RECORDS);
        }
        // Replacing an entry keeps the others.
        let full = cache.len();
        cache.remember(&format!("acct/{}", MAX_CACHED_RECORDS + 2), bytes, rec);
        assert_eq!(cache.len(), full);
    }
}
