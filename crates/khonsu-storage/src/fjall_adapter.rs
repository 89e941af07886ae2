//! [`FjallStorage`]: an LSM-tree store on [fjall](https://fjall-rs.github.io),
//! behind the cargo feature `fjall`.
//!
//! A fjall database in `DIR/fjall/` with two keyspaces, `khonsu_data` (key
//! bytes → stored value, the same encoding as every adapter: see
//! [`codec`](crate::codec)) and `khonsu_meta` (`format`, `last_commit_ts`,
//! little-endian `u64`s).
//!
//! Each [`Storage::write`] is one fjall write batch with
//! `PersistMode::SyncAll`: the batch goes to fjall's journal and the journal
//! is synced (`fsync`) before the write returns. fjall's default durability
//! only reaches the operating system's buffers; Khonsu always asks for the
//! sync. After a crash fjall replays its journal when opened and drops a
//! torn last batch, so a group is there whole or not at all.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ::fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use khonsu_core::Key;
use snafu::IntoError;

use crate::codec::ValueDecoder;
use crate::dir::{DataDir, Found};
use crate::error::guard;
use crate::error::{AdapterSnafu, BackendError, CorruptSnafu, NotAStoreSnafu, Result};
use crate::{
    Error, RecoveredEntry, RecoveredState, Storage, StorageMutation, StorageStats, WriteFailure,
    WriteGroup, display_key,
};

/// The adapter's name in manifests and messages.
pub(crate) const ADAPTER: &str = "fjall";
/// The fjall directory inside the data directory.
pub(crate) const DATA_DIR: &str = "fjall";
/// The longest key fjall stores.
pub(crate) const MAX_KEY_LEN: usize = 65_536;

const DATA: &str = "khonsu_data";
const META: &str = "khonsu_meta";
const META_FORMAT: &str = "format";
const META_LAST_TS: &str = "last_commit_ts";
const STORE_FORMAT: u64 = 1;

/// Options of [`FjallStorage::open_with`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct FjallOptions {
    /// fjall's block cache, in bytes. Default 32 MiB: Khonsu keeps the data
    /// in memory and reads the store only at recovery.
    pub cache_size: u64,
}

impl Default for FjallOptions {
    fn default() -> Self {
        Self {
            cache_size: 32 << 20,
        }
    }
}

/// A durable [`Storage`] on fjall, in a data directory.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_storage::{CommitRecord, FjallStorage, Storage, StorageMutation, WriteGroup};
///
/// let dir = tempfile::tempdir()?;
/// let batch = Arc::new(RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![7])) as _)])?);
/// {
///     let store = FjallStorage::open(dir.path())?;
///     let commit = CommitRecord { commit_ts: 5, mutations: vec![StorageMutation::put("k", batch.clone())?] };
///     store.write(WriteGroup::new(&[&commit]))?; // synced when it returns
/// }
/// let state = FjallStorage::open(dir.path())?.recover()?;
/// assert_eq!(state.last_commit_ts, 5);
/// assert_eq!(*state.entries[0].batch, *batch);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FjallStorage {
    /// Always `Some` until dropped (taken out so that its drop runs under
    /// the panic guard).
    db: Option<Database>,
    data: Keyspace,
    meta: Keyspace,
    path: PathBuf,
    /// The newest `last_commit_ts` written; held while a batch is built and
    /// committed so that the stored value only grows.
    last_ts: Mutex<u64>,
    writes: AtomicU64,
    commits: AtomicU64,
    bytes: AtomicU64,
    // Last: the directory lock is released after fjall is closed.
    dir: DataDir,
}

impl std::fmt::Debug for FjallStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FjallStorage {
    /// Opens (or creates) the fjall store in `dir` with default options.
    ///
    /// # Errors
    /// [`Error::Locked`] when another handle has `dir` open,
    /// [`Error::NotAStore`] for a directory that is not a Khonsu fjall
    /// store, [`Error::Corrupt`] and I/O errors; each names the path.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FjallOptions::default())
    }

    /// Opens (or creates) the fjall store in `dir`.
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    pub fn open_with(dir: impl AsRef<Path>, options: FjallOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let (data_dir, found) = DataDir::open(dir, ADAPTER, DATA_DIR)?;
        let path = dir.join(DATA_DIR);
        if found == Found::Existing && !path.exists() {
            return NotAStoreSnafu {
                path: &path,
                reason: "its manifest says fjall, but the fjall directory is missing",
            }
            .fail();
        }
        guard(&path, "open", || {
            Self::open_fjall(data_dir, found, path.clone(), options)
        })
    }

    fn open_fjall(
        data_dir: DataDir,
        found: Found,
        path: PathBuf,
        options: FjallOptions,
    ) -> Result<Self> {
        let failed = |operation, e: ::fjall::Error| adapter_error(&path, operation, e);
        let db = Database::builder(&path)
            .cache_size(options.cache_size)
            .open()
            .map_err(|e| match e {
                ::fjall::Error::InvalidVersion(_) | ::fjall::Error::JournalRecovery(_)
                    if found == Found::New =>
                {
                    NotAStoreSnafu {
                        path: &path,
                        reason: format!("it is not a fjall database ({e:?})"),
                    }
                    .build()
                }
                other => failed("open", other),
            })?;
        let names: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|n| AsRef::<str>::as_ref(n).to_owned())
            .collect();
        let foreign: Vec<&String> = names.iter().filter(|n| *n != DATA && *n != META).collect();
        if !foreign.is_empty() {
            return NotAStoreSnafu {
                path: &path,
                reason: format!("it is a fjall database with other keyspaces ({foreign:?})"),
            }
            .fail();
        }
        let both = names.iter().any(|n| n == META) && names.iter().any(|n| n == DATA);
        if found == Found::Existing && !both {
            // Opening would create the missing keyspace empty: silently
            // empty data. Refuse instead.
            return NotAStoreSnafu {
                path: &path,
                reason: format!(
                    "its keyspaces {DATA:?} and {META:?} are not both there (found {names:?})"
                ),
            }
            .fail();
        }
        let meta = db
            .keyspace(META, KeyspaceCreateOptions::default)
            .map_err(|e| failed("open the meta keyspace of", e))?;
        let data = db
            .keyspace(DATA, KeyspaceCreateOptions::default)
            .map_err(|e| failed("open the data keyspace of", e))?;
        let format = read_u64(&meta, META_FORMAT, &path)?;
        let last_ts = match format {
            Some(STORE_FORMAT) => read_u64(&meta, META_LAST_TS, &path)?.unwrap_or(0),
            Some(other) => {
                return NotAStoreSnafu {
                    path: &path,
                    reason: format!("its store format is {other}, this build reads {STORE_FORMAT}"),
                }
                .fail();
            }
            // Creating a keyspace is durable by itself: a crash between it
            // and the format record leaves the keyspaces empty, which the
            // next open finishes creating.
            None if found == Found::Existing
                || !data.is_empty().map_err(|e| failed("read", e))? =>
            {
                return NotAStoreSnafu {
                    path: &path,
                    reason: "it has no khonsu_meta format record",
                }
                .fail();
            }
            None => {
                let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
                batch.insert(&meta, META_FORMAT, STORE_FORMAT.to_le_bytes().to_vec());
                batch.insert(&meta, META_LAST_TS, 0_u64.to_le_bytes().to_vec());
                batch.commit().map_err(|e| failed("initialize", e))?;
                0
            }
        };
        if found == Found::New {
            data_dir.finish_creation(ADAPTER)?;
        }
        Ok(Self {
            db: Some(db),
            data,
            meta,
            path,
            last_ts: Mutex::new(last_ts),
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dir: data_dir,
        })
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes of every file in the data directory.
    ///
    /// # Errors
    /// I/O errors walking the directory.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        self.dir.bytes_on_disk()
    }

    /// Visits every stored key with its decoded value, or the reason it
    /// does not decode, in key order (see `RedbStorage::scan`); returns the
    /// newest commit timestamp.
    ///
    /// # Errors
    /// Backend failures reading the store.
    pub fn scan(
        &self,
        mut visit: impl FnMut(Key, std::result::Result<RecoveredEntry, Error>) -> bool,
    ) -> Result<u64> {
        guard(&self.path, "read", || self.scan_unguarded(&mut visit))
    }

    fn scan_unguarded(
        &self,
        visit: &mut impl FnMut(Key, std::result::Result<RecoveredEntry, Error>) -> bool,
    ) -> Result<u64> {
        let last_ts = read_u64(&self.meta, META_LAST_TS, &self.path)?.unwrap_or(0);
        let mut decoder = ValueDecoder::default();
        for item in self.data.iter() {
            let (key, value) = item
                .into_inner()
                .map_err(|e| adapter_error(&self.path, "read", e))?;
            let key = Key::from(key.as_ref());
            let entry = decoder
                .decode(value.to_vec())
                .map(|(commit_ts, batch)| RecoveredEntry {
                    key: key.clone(),
                    commit_ts,
                    batch: std::sync::Arc::new(batch),
                })
                .map_err(|message| {
                    CorruptSnafu {
                        path: self.path.clone(),
                        key: display_key(key.as_bytes()),
                        message,
                    }
                    .build()
                });
            if !visit(key, entry) {
                break;
            }
        }
        Ok(last_ts)
    }
}

fn adapter_error(path: &Path, operation: &'static str, error: impl Into<BackendError>) -> Error {
    AdapterSnafu {
        adapter: ADAPTER,
        operation,
        path,
    }
    .into_error(error.into())
}

fn read_u64(keyspace: &Keyspace, key: &str, path: &Path) -> Result<Option<u64>> {
    let Some(bytes) = keyspace
        .get(key)
        .map_err(|e| adapter_error(path, "read", e))?
    else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| {
        CorruptSnafu {
            path,
            key: display_key(key.as_bytes()),
            message: format!("meta value is {} bytes, not 8", bytes.len()),
        }
        .build()
    })?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

impl Drop for FjallStorage {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            let _ = guard(&self.path, "close", || {
                drop(db);
                Ok(())
            });
        }
    }
}

impl Storage for FjallStorage {
    fn name(&self) -> &'static str {
        ADAPTER
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        snafu::ensure!(
            key.len() <= MAX_KEY_LEN,
            crate::error::UnencodableSnafu {
                reason: format!(
                    "key {} is {} bytes; fjall stores keys of at most {MAX_KEY_LEN}",
                    display_key(key),
                    key.len()
                ),
            }
        );
        Ok(())
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        if group.is_empty() {
            return Ok(());
        }
        let mut last_ts = self
            .last_ts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(db) = &self.db else {
            return Err(WriteFailure::NothingWritten(adapter_error(
                &self.path,
                "use the closed database",
                std::io::Error::other("closed"),
            )));
        };
        let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
        let mut bytes = 0_u64;
        for (commit_ts, mutation) in group.mutations() {
            let key = mutation.key().as_bytes();
            self.check_key(key).map_err(WriteFailure::NothingWritten)?;
            bytes += key.len() as u64;
            match mutation {
                StorageMutation::Put { encoded, .. } => {
                    let value = encoded.stored(commit_ts);
                    bytes += value.len() as u64;
                    batch.insert(&self.data, key, &*value);
                }
                StorageMutation::Delete { .. } => batch.remove(&self.data, key),
            }
        }
        let group_ts = group.last_commit_ts();
        if group_ts > *last_ts {
            batch.insert(&self.meta, META_LAST_TS, group_ts.to_le_bytes().to_vec());
        }
        batch.commit().map_err(|e| match e {
            // A poisoned database refuses the batch before writing it.
            ::fjall::Error::Poisoned => {
                WriteFailure::NothingWritten(adapter_error(&self.path, "write a batch to", e))
            }
            // The journal write or its sync failed: it may be on disk.
            other => {
                WriteFailure::OutcomeUnknown(adapter_error(&self.path, "write a batch to", other))
            }
        })?;
        *last_ts = (*last_ts).max(group_ts);
        drop(last_ts);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.commits
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn recover(&self) -> Result<RecoveredState> {
        let mut entries = Vec::new();
        let mut damage = None;
        let last_commit_ts = self.scan(|_, entry| match entry {
            Ok(entry) => {
                entries.push(entry);
                true
            }
            Err(e) => {
                damage = Some(e);
                false
            }
        })?;
        if let Some(e) = damage {
            return Err(e);
        }
        Ok(RecoveredState::new(last_commit_ts, entries))
    }

    fn stats(&self) -> StorageStats {
        let writes = self.writes.load(Ordering::Relaxed);
        StorageStats {
            writes,
            commits: self.commits.load(Ordering::Relaxed),
            // One journal sync per write batch (PersistMode::SyncAll).
            syncs: writes,
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}
