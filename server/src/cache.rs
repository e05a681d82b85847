//! In-memory caches of rows that never change once written (a device's keys
//! and ids, an API key's hash and relying party), so the hot requests do not
//! re-read and re-validate them. Anything that can change (a device's status,
//! an API key's revocation) is still checked in the database on every request,
//! folded into a statement the request runs anyway; see
//! `service::auth::authenticate_device` and `service::auth::authenticate_rp_cached`.
//! Safe with several instances on one database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A bounded map from id to an immutable value. When full it starts over
/// (cheap, and a miss only costs one database read).
#[derive(Debug)]
pub struct Cache<V> {
    map: RwLock<HashMap<String, Arc<V>>>,
    capacity: usize,
}

impl<V> Cache<V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The cached value for `key`.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// Caches `value` for `key` and returns it.
    pub fn insert(&self, key: &str, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.capacity && !map.contains_key(key) {
                map.clear();
            }
            map.insert(key.to_string(), value.clone());
        }
        value
    }

    /// Forgets `key` (its row was deleted).
    pub fn remove(&self, key: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let c = Cache::new(2);
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(c.get("a").as_deref(), Some(&1));
        c.insert("b", 3);
        assert_eq!(c.get("a").as_deref(), Some(&1));
        c.insert("c", 4);
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("c").as_deref(), Some(&4));
        c.remove("c");
        assert_eq!(c.get("c"), None);
    }
}
