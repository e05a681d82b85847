//! Secure storage of byte blobs by key, and the two shipped stores.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::crypto::{aes_gcm_open, aes_gcm_seal, ct_eq, random_array};

/// Longest storage key, in bytes.
pub const MAX_KEY_LEN: usize = 120;

/// Storage failures. Messages name the operation, never keys' values or contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The key is empty, too long or has characters outside printable ASCII.
    #[error("invalid storage key")]
    InvalidKey,
    /// The platform store failed (disk full, I/O error, keychain locked).
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored data did not decrypt or parse: corrupted or tampered with.
    #[error("stored data is corrupt")]
    Corrupt,
    /// The storage key could not be obtained (keyring locked or unavailable).
    #[error("storage key unavailable: {0}")]
    KeyUnavailable(String),
}

/// Byte blobs by key (DESIGN §3).
///
/// Contract:
/// * `put` is atomic: after a crash, `get` returns the old or the new value, never
///   a mix or nothing. `delete` of a missing key succeeds.
/// * Values may be secret: implementations encrypt at rest or use the platform's
///   protected store (Android Keystore-wrapped files, iOS Keychain `…ThisDeviceOnly`).
/// * Keys are printable ASCII, at most [`MAX_KEY_LEN`] bytes; `list` returns every
///   key starting with `prefix`, in any order.
///
/// # Several processes
///
/// An app may run the core in more than one process on the same store (an iOS
/// Notification Service Extension, an Android push service in its own process).
/// The core trusts no copy of a record between calls (a decoded record it keeps
/// is used only while the stored bytes are exactly the ones it was decoded
/// from): every change reads the current value, applies the change and writes
/// it back with
/// [`compare_and_put`](Self::compare_and_put). If another process (or thread)
/// wrote in between, the swap fails, the core re-reads and applies its change
/// again. So no process loses or rolls back another's write, and counters kept
/// in records (wrong PINs, replay state) only move forward. An implementation
/// must make `compare_and_put` atomic against every process sharing the store
/// (a file lock around read-compare-rename, or a keychain/database transaction).
///
/// Threading: called from any thread, concurrently. Calls may block on I/O
/// briefly. The core holds none of its locks while calling, so an implementation
/// may call back into the core (it should not need to).
pub trait SecureStorage: Send + Sync {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError>;
    /// Stores `value` under `key`, atomically replacing any old value.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Every key that starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Stores `value` under `key` only if the stored value is still `expected`
    /// (`None`: no value). Returns `false`, changing nothing, if it is not. Atomic
    /// against every thread and process using the store.
    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StorageError>;
}

/// Whether a stored value is the one a compare-and-swap expects. Constant time
/// in the contents: records hold secrets.
pub(crate) fn is_expected(current: Option<&[u8]>, expected: Option<&[u8]>) -> bool {
    match (current, expected) {
        (None, None) => true,
        (Some(a), Some(b)) => ct_eq(a, b),
        _ => false,
    }
}

/// Checks a storage key's shape.
pub(crate) fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StorageError::InvalidKey);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Memory

/// In-memory storage for tests and ephemeral sessions. Values are zeroized when
/// replaced, deleted or dropped.
#[derive(Default)]
pub struct MemoryStorage {
    map: Mutex<BTreeMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Zeroizing<Vec<u8>>>> {
        // A panic elsewhere cannot leave a half-written map (every operation is one
        // map call), so a poisoned lock is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryStorage({} entries)", self.map().len())
    }
}

impl SecureStorage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        check_key(key)?;
        Ok(self.map().get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        check_key(key)?;
        self.map()
            .insert(key.to_owned(), Zeroizing::new(value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        self.map().remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .map()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StorageError> {
        check_key(key)?;
        let mut map = self.map();
        if !is_expected(map.get(key).map(|v| v.as_slice()), expected) {
            return Ok(false);
        }
        map.insert(key.to_owned(), Zeroizing::new(value.to_vec()));
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Files

/// Where [`FileStorage`] gets its 256-bit storage key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The OS keyring (Secret Service on Linux: GNOME Keyring, KWallet), entry
    /// `service` / `user`; created on first use. The default choice for desktops.
    #[cfg(feature = "os-keyring")]
    OsKeyring {
        /// Keyring service name ("countersign").
        service: String,
        /// Keyring user name (a profile name).
        user: String,
    },
    /// A key file with 0600 permissions, created on first use. Only when chosen
    /// explicitly (headless machines, tests): anyone who can read the file and the
    /// data directory can decrypt the data.
    KeyFile(PathBuf),
}

const FILE_MAGIC: &[u8; 4] = b"CSF1";
const FILE_AAD_LABEL: &[u8] = b"countersign/v1/file-storage\0";
const RECORD_EXT: &str = ".rec";
const TMP_MARKER: &str = ".tmp-";
/// The lock file every write holds (see [`FileStorage`]).
const LOCK_FILE: &str = "lock";

/// Encrypted files, one per key, in a directory.
///
/// Each value is sealed with AES-256-GCM under the storage key (random nonce; the
/// key name is the associated data, so files cannot be swapped between keys). Every
/// write goes to a temp file that is fsynced, renamed over the old file, and the
/// directory fsynced: a crash leaves the old or the new value. File names are the
/// hex of the key names (which hold only opaque ids).
///
/// Several processes may share a directory: every write, and every
/// compare-and-swap's read-compare-write, holds an exclusive advisory lock on the
/// directory's `lock` file (`flock`), which the OS releases if a process dies.
pub struct FileStorage {
    dir: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn io_err(what: &str, e: &std::io::Error) -> StorageError {
    StorageError::Io(format!("{what}: {}", e.kind()))
}

/// Decodes a file name's lowercase hex (what [`hex::encode`] writes); other
/// spellings of the same bytes are not ours.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()
}

/// Fsyncs a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("sync directory", &e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync,
/// rename, fsync the directory. Files are created with mode 0600.
fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> Result<(), StorageError> {
    let suffix = hex::encode(random_array::<8>().map_err(|_| StorageError::Io("rng".into()))?);
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(StorageError::InvalidKey)?;
    let tmp = dir.join(format!("{file_name}{TMP_MARKER}{suffix}"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp).map_err(|e| io_err("create", &e))?;
        f.write_all(data).map_err(|e| io_err("write", &e))?;
        f.sync_all().map_err(|e| io_err("sync", &e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io_err("rename", &e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl FileStorage {
    /// Opens (creating if needed) the store in `dir` with its key from `source`.
    /// Leftover temp files from an interrupted write are removed.
    ///
    /// With [`KeySource::OsKeyring`] this talks to the keyring over D-Bus and may
    /// block for a moment; call it from a worker thread.
    pub fn open(dir: impl Into<PathBuf>, source: &KeySource) -> Result<Self, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_err("create directory", &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err("chmod directory", &e))?;
        }
        let key = match source {
            #[cfg(feature = "os-keyring")]
            KeySource::OsKeyring { service, user } => keyring_key(service, user)?,
            KeySource::KeyFile(path) => key_file(path)?,
        };
        let store = Self { dir, key };
        // Under the lock: another process's temp file is only ever in flight
        // while it holds the lock.
        let _lock = store.lock()?;
        store.remove_temp_files()?;
        Ok(store)
    }

    /// Takes the directory's write lock (released when the file handle drops).
    fn lock(&self) -> Result<fs::File, StorageError> {
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(self.dir.join(LOCK_FILE))
            .map_err(|e| io_err("open lock file", &e))?;
        file.lock().map_err(|e| io_err("lock", &e))?;
        Ok(file)
    }

    /// The stored value, decrypted.
    fn read_value(
        &self,
        key: &str,
        path: &Path,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &e)),
        };
        let body = data
            .strip_prefix(FILE_MAGIC.as_slice())
            .ok_or(StorageError::Corrupt)?;
        let (nonce, ct) = body.split_at_checked(12).ok_or(StorageError::Corrupt)?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| StorageError::Corrupt)?;
        let plain = aes_gcm_open(self.key.as_slice(), &nonce, &Self::aad(key), ct)
            .map_err(|_| StorageError::Corrupt)?;
        Ok(Some(plain))
    }

    /// Encrypts and writes the value (the caller holds the lock).
    fn write_value(&self, key: &str, path: &Path, value: &[u8]) -> Result<(), StorageError> {
        let nonce = random_array::<12>().map_err(|_| StorageError::Io("rng".into()))?;
        let ct = aes_gcm_seal(self.key.as_slice(), &nonce, &Self::aad(key), value)
            .map_err(|_| StorageError::Io("encrypt".into()))?;
        let mut data = Vec::with_capacity(4 + 12 + ct.len());
        data.extend_from_slice(FILE_MAGIC);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ct);
        write_atomic(&self.dir, path, &data)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn remove_temp_files(&self) -> Result<(), StorageError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err("read directory", &e))?;
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && name.contains(TMP_MARKER)
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn path_for(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        Ok(self
            .dir
            .join(format!("{}{RECORD_EXT}", hex::encode(key.as_bytes()))))
    }

    fn aad(key: &str) -> Vec<u8> {
        let mut aad = FILE_AAD_LABEL.to_vec();
        aad.extend_from_slice(key.as_bytes());
        aad
    }
}

impl SecureStorage for FileStorage {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        // No lock: a rename replaces a file whole, so a read sees old or new.
        let path = self.path_for(key)?;
        self.read_value(key, &path)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let path = self.path_for(key)?;
        let _lock = self.lock()?;
        self.write_value(key, &path, value)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_for(key)?;
        let _lock = self.lock()?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &e)),
        }
    }

    fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StorageError> {
        let path = self.path_for(key)?;
        let _lock = self.lock()?;
        let current = self.read_value(key, &path)?;
        if !is_expected(current.as_ref().map(|v| v.as_slice()), expected) {
            return Ok(false);
        }
        self.write_value(key, &path, value)?;
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err("read directory", &e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(hex) = name.strip_suffix(RECORD_EXT) else {
                continue;
            };
            let Some(bytes) = hex_decode(hex) else {
                continue;
            };
            let Ok(key) = String::from_utf8(bytes) else {
                continue;
            };
            if key.starts_with(prefix) {
                out.push(key);
            }
        }
        Ok(out)
    }
}

/// Reads the 32-byte key file, or creates it (0600, atomically) on first use.
fn key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, StorageError> {
    match fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::KeyUnavailable("key file has the wrong size".into()))?;
            Ok(Zeroizing::new(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key =
                Zeroizing::new(random_array::<32>().map_err(|_| StorageError::Io("rng".into()))?);
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            fs::create_dir_all(parent).map_err(|e| io_err("create key directory", &e))?;
            write_atomic(parent, path, key.as_slice())?;
            Ok(key)
        }
        Err(e) => Err(io_err("read key file", &e)),
    }
}

/// Gets the storage key from the OS keyring, creating it on first use.
#[cfg(feature = "os-keyring")]
fn keyring_key(service: &str, user: &str) -> Result<Zeroizing<[u8; 32]>, StorageError> {
    use keyring_core::api::CredentialStoreApi;
    let unavailable = |e: keyring_core::Error| StorageError::KeyUnavailable(keyring_reason(&e));
    let store = zbus_secret_service_keyring_store::Store::new().map_err(unavailable)?;
    let entry = store.build(service, user, None).map_err(unavailable)?;
    match entry.get_secret() {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                StorageError::KeyUnavailable("keyring entry has the wrong size".into())
            })?;
            Ok(Zeroizing::new(arr))
        }
        Err(keyring_core::Error::NoEntry) => {
            let key =
                Zeroizing::new(random_array::<32>().map_err(|_| StorageError::Io("rng".into()))?);
            entry.set_secret(key.as_slice()).map_err(unavailable)?;
            Ok(key)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// The error kind only: keyring errors can carry the secret bytes (`BadEncoding`).
#[cfg(feature = "os-keyring")]
fn keyring_reason(e: &keyring_core::Error) -> String {
    match e {
        keyring_core::Error::PlatformFailure(_) => "platform failure".into(),
        keyring_core::Error::NoStorageAccess(_) => "keyring locked or inaccessible".into(),
        keyring_core::Error::NoEntry => "no entry".into(),
        keyring_core::Error::Ambiguous(_) => "several matching entries".into(),
        keyring_core::Error::NoDefaultStore => "no keyring".into(),
        _ => "keyring error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder, removed when the returned guard drops.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("cs-storage-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn file_names_are_lowercase_hex() {
        assert_eq!(hex::encode(b"acct/a1"), "616363742f6131");
        assert_eq!(hex_decode("616363742f6131"), Some(b"acct/a1".to_vec()));
        assert_eq!(hex_decode("6A"), None);
        assert_eq!(hex_decode("6a"), Some(vec![0x6a]));
        assert_eq!(hex_decode("6"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    fn exercise(s: &dyn SecureStorage) {
        assert_eq!(s.get("a/1").unwrap(), None);
        s.put("a/1", b"one").unwrap();
        s.put("a/2", b"two").unwrap();
        s.put("b/1", b"").unwrap();
        assert_eq!(s.get("a/1").unwrap().unwrap().as_slice(), b"one");
        s.put("a/1", b"uno").unwrap();
        assert_eq!(s.get("a/1").unwrap().unwrap().as_slice(), b"uno");
        assert_eq!(s.get("b/1").unwrap().unwrap().as_slice(), b"");
        let mut l = s.list("a/").unwrap();
        l.sort();
        assert_eq!(l, vec!["a/1".to_string(), "a/2".to_string()]);
        s.delete("a/1").unwrap();
        s.delete("a/1").unwrap();
        assert_eq!(s.get("a/1").unwrap(), None);
        // Compare-and-swap: absent, stale, current.
        assert!(s.compare_and_put("c/1", None, b"v1").unwrap());
        assert!(!s.compare_and_put("c/1", None, b"v2").unwrap());
        assert!(!s.compare_and_put("c/1", Some(b"v0"), b"v2").unwrap());
        assert_eq!(s.get("c/1").unwrap().unwrap().as_slice(), b"v1");
        assert!(s.compare_and_put("c/1", Some(b"v1"), b"v2").unwrap());
        assert_eq!(s.get("c/1").unwrap().unwrap().as_slice(), b"v2");
        s.delete("c/1").unwrap();
        assert!(!s.compare_and_put("c/1", Some(b"v2"), b"v3").unwrap());
        assert_eq!(s.put("", b"x"), Err(StorageError::InvalidKey));
        assert_eq!(s.put("a b", b"x"), Err(StorageError::InvalidKey));
        assert_eq!(
            s.put(&"k".repeat(MAX_KEY_LEN + 1), b"x"),
            Err(StorageError::InvalidKey)
        );
    }

    #[test]
    fn memory_storage_contract() {
        exercise(&MemoryStorage::new());
    }

    #[test]
    fn file_storage_contract_and_reopen() {
        let tmp = temp_dir("contract");
        let dir = tmp.path();
        let key = dir.join("keys").join("storage.key");
        {
            let s = FileStorage::open(dir.join("data"), &KeySource::KeyFile(key.clone())).unwrap();
            exercise(&s);
            s.put("persist", b"value").unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let s = FileStorage::open(dir.join("data"), &KeySource::KeyFile(key.clone())).unwrap();
        assert_eq!(s.get("persist").unwrap().unwrap().as_slice(), b"value");
        // Plaintext never hits the disk.
        for entry in fs::read_dir(dir.join("data")).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(5).any(|w| w == b"value"));
        }
        // Another key cannot read the data.
        let other = FileStorage::open(dir.join("data"), &KeySource::KeyFile(dir.join("other.key")))
            .unwrap();
        assert_eq!(other.get("persist"), Err(StorageError::Corrupt));
    }

    #[test]
    fn file_storage_detects_swapped_and_corrupt_files() {
        let tmp = temp_dir("swap");
        let dir = tmp.path();
        let s = FileStorage::open(dir, &KeySource::KeyFile(dir.join("k"))).unwrap();
        s.put("x", b"secret-x").unwrap();
        s.put("y", b"secret-y").unwrap();
        let px = s.path_for("x").unwrap();
        let py = s.path_for("y").unwrap();
        fs::copy(&py, &px).unwrap();
        assert_eq!(s.get("x"), Err(StorageError::Corrupt));
        fs::write(&py, b"CSF1short").unwrap();
        assert_eq!(s.get("y"), Err(StorageError::Corrupt));
        // A leftover temp file is cleaned up on open and never listed.
        fs::write(dir.join(format!("78{RECORD_EXT}{TMP_MARKER}00")), b"junk").unwrap();
        let s = FileStorage::open(dir, &KeySource::KeyFile(dir.join("k"))).unwrap();
        let mut l = s.list("").unwrap();
        l.sort();
        assert_eq!(l, vec!["x".to_string(), "y".to_string()]);
        assert!(fs::read_dir(dir).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .contains(TMP_MARKER)
        }));
    }

    /// Two stores on one directory (as two processes would open it), each adding
    /// to a counter by compare-and-swap from its own threads: no increment is lost.
    #[test]
    fn file_storage_compare_and_swap_across_handles() {
        let tmp = temp_dir("cas");
        let dir = tmp.path().to_path_buf();
        let key = KeySource::KeyFile(dir.join("k"));
        let stores: Vec<_> = (0..2)
            .map(|_| std::sync::Arc::new(FileStorage::open(dir.join("data"), &key).unwrap()))
            .collect();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = stores[i % 2].clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        loop {
                            let old = s.get("counter").unwrap();
                            let n: u32 = old
                                .as_ref()
                                .map(|v| std::str::from_utf8(v).unwrap().parse().unwrap())
                                .unwrap_or(0);
                            let new = (n + 1).to_string();
                            if s.compare_and_put(
                                "counter",
                                old.as_deref().map(|v| v.as_slice()),
                                new.as_bytes(),
                            )
                            .unwrap()
                            {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            stores[0].get("counter").unwrap().unwrap().as_slice(),
            b"100"
        );
        assert!(!stores[1].list("").unwrap().contains(&LOCK_FILE.to_string()));
    }

    #[test]
    fn debug_redacts_key() {
        let tmp = temp_dir("debug");
        let dir = tmp.path();
        let s = FileStorage::open(dir, &KeySource::KeyFile(dir.join("k"))).unwrap();
        let d = format!("{s:?}");
        assert!(d.contains("redacted"));
    }
}
