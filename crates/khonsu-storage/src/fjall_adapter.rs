//! [`FjallStorage`]: an LSM-tree store on [fjall](https://fjall-rs.github.io),
//! behind the cargo feature `fjall`.
//!
//! A fjall database in `DIR/fjall/` with two keyspaces, `khonsu_data` (key
//! bytes → stored value, the same encoding as every adapter: see
//! [`codec`](crate::codec)) and `khonsu_meta` (`format`, `last_commit_ts`,
//! `key_count`, `digest`: little-endian `u64`s). A new store is built in
//! `DIR/fjall.tmp/` and renamed into place whole.
//!
//! fjall checksums its journal entries and blocks, but not everything: a
//! flipped bit in a journal batch's sequence number replays the batch at
//! another point of history (found by Khonsu's damage tests, a mix of old
//! and new values). So, as for redb, the meta keyspace keeps the number of
//! live keys and the XOR of their [`entry_digest`](crate::codec::entry_digest)s
//! in the same batch as the data (the old value of each written key is read
//! to update them), and recovery refuses a store that does not match them
//! or that holds a value newer than `last_commit_ts`.
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
use snafu::{IntoError, ResultExt};

use crate::codec::{ValueDecoder, entry_digest, stored_commit_ts};
use crate::dir::{DataDir, Found};
use crate::error::guard;
use crate::error::{AdapterSnafu, BackendError, CorruptSnafu, IoSnafu, NotAStoreSnafu, Result};
use crate::traits::ScanTally;
use crate::{
    Error, RecoveredEntry, RecoveredState, Scanned, Storage, StorageMutation, StorageStats,
    WriteFailure, WriteGroup, display_key,
};

/// The adapter's name in manifests and messages.
pub(crate) const ADAPTER: &str = "fjall";
/// The fjall directory inside the data directory.
pub(crate) const DATA_DIR: &str = "fjall";

const DATA: &str = "khonsu_data";
const META: &str = "khonsu_meta";
const META_FORMAT: &str = "format";
const META_LAST_TS: &str = "last_commit_ts";
const META_KEY_COUNT: &str = "key_count";
const META_DIGEST: &str = "digest";
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
    /// The meta records as last written; held while a batch is built and
    /// committed, so that `last_commit_ts` only grows and the count and
    /// digest follow every batch.
    meta_state: Mutex<MetaState>,
    writes: AtomicU64,
    commits: AtomicU64,
    bytes: AtomicU64,
    // Last: the directory lock is released after fjall is closed.
    dir: DataDir,
}

/// The meta keyspace's running records.
#[derive(Clone, Copy, Debug, Default)]
struct MetaState {
    last_ts: u64,
    key_count: u64,
    digest: u64,
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
        if found == Found::New && !path.exists() {
            // Built under a temporary name and renamed into place whole, so
            // that a crash during creation leaves nothing half made (fjall
            // refuses a directory whose creation it did not finish).
            create(dir, &path, options)?;
        }
        // fjall trusts its version files: check them (and that the tables
        // they list exist) before it reads them (see `fjall_files`).
        crate::fjall_files::check_versions(&path)?;
        guard(&path, "open", || {
            Self::open_fjall(data_dir, found, path.clone(), options)
        })
    }

    /// Checks every file fjall keeps against the checksum recorded for it:
    /// each keyspace's version file against its `current` file, and each
    /// table file against its version (reads every table once). `inspect`
    /// runs it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the damaged or missing file; I/O errors.
    pub fn verify_files(&self) -> Result<()> {
        crate::fjall_files::check_tables(&self.path)
    }

    fn open_fjall(
        data_dir: DataDir,
        found: Found,
        path: PathBuf,
        options: FjallOptions,
    ) -> Result<Self> {
        let db = Database::builder(&path)
            .cache_size(options.cache_size)
            .open()
            .map_err(|e| match e {
                ::fjall::Error::InvalidVersion(_) if found == Found::New => NotAStoreSnafu {
                    path: &path,
                    reason: format!("it is not a fjall database ({e:?})"),
                }
                .build(),
                other => fjall_error(&path, "open", other),
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
        if !(names.iter().any(|n| n == META) && names.iter().any(|n| n == DATA)) {
            // Opening would create the missing keyspace empty: silently
            // empty data. Refuse instead (a store of ours always has both:
            // it is renamed into place only after they are made).
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
            .map_err(|e| fjall_error(&path, "open the meta keyspace of", e))?;
        let data = db
            .keyspace(DATA, KeyspaceCreateOptions::default)
            .map_err(|e| fjall_error(&path, "open the data keyspace of", e))?;
        match read_u64(&meta, META_FORMAT, &path)? {
            Some(STORE_FORMAT) => {}
            Some(other) => {
                return NotAStoreSnafu {
                    path: &path,
                    reason: format!("its store format is {other}, this build reads {STORE_FORMAT}"),
                }
                .fail();
            }
            None => {
                return NotAStoreSnafu {
                    path: &path,
                    reason: "it has no khonsu_meta format record",
                }
                .fail();
            }
        }
        let meta_state = MetaState {
            last_ts: read_u64(&meta, META_LAST_TS, &path)?.unwrap_or(0),
            key_count: read_u64(&meta, META_KEY_COUNT, &path)?.unwrap_or(0),
            digest: read_u64(&meta, META_DIGEST, &path)?.unwrap_or(0),
        };
        if found == Found::New {
            data_dir.finish_creation(ADAPTER)?;
        }
        Ok(Self {
            db: Some(db),
            data,
            meta,
            path,
            meta_state: Mutex::new(meta_state),
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
    /// does not decode, in key order, then checks the key count and digest
    /// of the meta keyspace against what it visited (see
    /// `RedbStorage::scan`).
    ///
    /// # Errors
    /// Backend failures reading the store; a count or digest that does not
    /// match is returned in [`Scanned::integrity`].
    pub fn scan(
        &self,
        mut visit: impl FnMut(Key, std::result::Result<RecoveredEntry, Error>) -> bool,
    ) -> Result<Scanned> {
        guard(&self.path, "read", || self.scan_unguarded(&mut visit))
    }

    fn scan_unguarded(
        &self,
        visit: &mut impl FnMut(Key, std::result::Result<RecoveredEntry, Error>) -> bool,
    ) -> Result<Scanned> {
        let read = |key| read_u64(&self.meta, key, &self.path).map(Option::unwrap_or_default);
        let last_commit_ts = read(META_LAST_TS)?;
        let (want_count, want_digest) = (read(META_KEY_COUNT)?, read(META_DIGEST)?);
        let mut decoder = ValueDecoder::default();
        let (mut tally, mut complete) = (ScanTally::default(), true);
        for item in self.data.iter() {
            let (key, value) = item
                .into_inner()
                .map_err(|e| fjall_error(&self.path, "read", e))?;
            let key = Key::from(key.as_ref());
            let entry = tally.entry(&self.path, &key, decoder.decode(value.to_vec()));
            if !visit(key, entry) {
                complete = false;
                break;
            }
        }
        let ScanTally {
            count,
            digest,
            newest,
        } = tally;
        let matches = (count, digest) == (want_count, want_digest) && newest <= last_commit_ts;
        let integrity = if complete && !matches {
            Err(CorruptSnafu {
                path: self.path.clone(),
                key: "-".to_owned(),
                message: format!(
                    "the store's contents do not match its meta keyspace: {count} keys (digest \
                     {digest:#018x}, newest value at {newest}) found, {want_count} (digest \
                     {want_digest:#018x}, last commit {last_commit_ts}) recorded; entries were \
                     lost, replayed out of order or changed by damage to the files"
                ),
            }
            .build())
        } else {
            Ok(())
        };
        Ok(Scanned {
            last_commit_ts,
            integrity,
        })
    }
}

/// Creates a new store in `DIR/fjall.tmp` (replacing a leftover one of an
/// interrupted creation), with its keyspaces and meta records, then renames
/// it to `path` and syncs the data directory.
fn create(dir: &Path, path: &Path, options: FjallOptions) -> Result<()> {
    let tmp = dir.join(format!("{DATA_DIR}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).context(IoSnafu {
            operation: "remove the leftover of an interrupted creation",
            path: &tmp,
        })?;
    }
    guard(&tmp, "create", || {
        let failed = |operation, e| fjall_error(&tmp, operation, e);
        let db = Database::builder(&tmp)
            .cache_size(options.cache_size)
            .open()
            .map_err(|e| failed("create", e))?;
        let meta = db
            .keyspace(META, KeyspaceCreateOptions::default)
            .map_err(|e| failed("create the meta keyspace of", e))?;
        db.keyspace(DATA, KeyspaceCreateOptions::default)
            .map_err(|e| failed("create the data keyspace of", e))?;
        let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&meta, META_FORMAT, STORE_FORMAT.to_le_bytes().to_vec());
        for key in [META_LAST_TS, META_KEY_COUNT, META_DIGEST] {
            batch.insert(&meta, key, 0_u64.to_le_bytes().to_vec());
        }
        batch.commit().map_err(|e| failed("initialize", e))?;
        db.persist(PersistMode::SyncAll)
            .map_err(|e| failed("sync", e))?;
        Ok(())
    })?;
    std::fs::rename(&tmp, path).context(IoSnafu {
        operation: "rename the new fjall directory into place at",
        path,
    })?;
    crate::dir::sync_dir(dir)
}

/// Whether an I/O error fjall reports means a file is missing, cut short
/// or malformed (damage), rather than a failing device or a permission.
fn is_damage_kind(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::NotFound | ErrorKind::UnexpectedEof | ErrorKind::InvalidData
    )
}

/// A fjall error, classified: damage fjall detected is corruption, and so
/// is an I/O error of a damage kind (a missing file, one cut short) —
/// then the files are checked against their checksums to name the one
/// that is damaged, if any is.
fn fjall_error(path: &Path, operation: &'static str, error: ::fjall::Error) -> Error {
    let io_damage = match &error {
        ::fjall::Error::Io(e) | ::fjall::Error::Storage(::fjall::LsmError::Io(e)) => {
            is_damage_kind(e)
        }
        _ => false,
    };
    let damaged = io_damage
        || match &error {
            ::fjall::Error::Storage(inner) => !matches!(inner, ::fjall::LsmError::Io(_)),
            ::fjall::Error::JournalRecovery(_)
            | ::fjall::Error::InvalidVersion(_)
            | ::fjall::Error::Decompress(_)
            | ::fjall::Error::InvalidTrailer
            | ::fjall::Error::InvalidTag(_)
            | ::fjall::Error::Unrecoverable => true,
            _ => false,
        };
    if !damaged {
        return adapter_error(path, operation, error);
    }
    let reported = format!("fjall could not {operation} it: {error:?}");
    let named = if io_damage {
        match crate::fjall_files::check_tables(path) {
            Err(Error::Corrupt { path, message, .. }) => Some((path, message)),
            _ => None,
        }
    } else {
        None
    };
    match named {
        Some((file, message)) => CorruptSnafu {
            path: file,
            key: "-".to_owned(),
            message: format!("{message} ({reported})"),
        }
        .build(),
        None => CorruptSnafu {
            path,
            key: "-".to_owned(),
            message: reported,
        }
        .build(),
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
        .map_err(|e| fjall_error(path, "read", e))?
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

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        if group.is_empty() {
            return Ok(());
        }
        group.check_keys().map_err(WriteFailure::NothingWritten)?;
        let not_written =
            |operation, e| WriteFailure::NothingWritten(fjall_error(&self.path, operation, e));
        let mut state = self
            .meta_state
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
        let (mut bytes, mut added, mut removed, mut digest) = (0_u64, 0_u64, 0_u64, 0_u64);
        for (commit_ts, mutation) in group.mutations() {
            let key = mutation.key().as_bytes();
            // fjall asserts on keys it cannot hold (empty, or longer than
            // 65,535 bytes): puts of them were refused above, and nothing
            // can be stored under them, so their deletes are no-ops.
            if crate::check_key(key).is_err() {
                continue;
            }
            bytes += key.len() as u64;
            // The old value, for the live-key count and digest.
            if let Some(old) = self.data.get(key).map_err(|e| not_written("read", e))? {
                digest ^= entry_digest(key, stored_commit_ts(&old).unwrap_or(0));
                removed += 1;
            }
            match mutation {
                StorageMutation::Put { encoded, .. } => {
                    let value = encoded.stored(commit_ts);
                    bytes += value.len() as u64;
                    digest ^= entry_digest(key, commit_ts);
                    added += 1;
                    batch.insert(&self.data, key, &*value);
                }
                StorageMutation::Delete { .. } => batch.remove(&self.data, key),
            }
        }
        let next = MetaState {
            last_ts: state.last_ts.max(group.last_commit_ts()),
            key_count: (state.key_count + added).saturating_sub(removed),
            digest: state.digest ^ digest,
        };
        for (key, v) in [
            (META_LAST_TS, next.last_ts),
            (META_KEY_COUNT, next.key_count),
            (META_DIGEST, next.digest),
        ] {
            batch.insert(&self.meta, key, v.to_le_bytes().to_vec());
        }
        batch.commit().map_err(|e| match e {
            // A poisoned database refuses the batch before writing it.
            ::fjall::Error::Poisoned => not_written("write a batch to", e),
            // The journal write or its sync failed: it may be on disk.
            other => {
                WriteFailure::OutcomeUnknown(fjall_error(&self.path, "write a batch to", other))
            }
        })?;
        *state = next;
        drop(state);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.commits
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn recover(&self) -> Result<RecoveredState> {
        Scanned::recover(|visit| self.scan(visit))
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
