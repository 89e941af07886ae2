//! [`RedbStorage`]: the embedded default, on [redb](https://www.redb.org)
//! (pure Rust, copy-on-write B-trees, ACID).
//!
//! One redb file, `DIR/data.redb`, with two tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `khonsu_data` | the key's bytes | the stored value ([`codec`](crate::codec): checksummed header with the commit timestamp, then Arrow IPC) |
//! | `khonsu_meta` | `"format"`, `"last_commit_ts"`, `"key_count"`, `"digest"` | `u64` |
//!
//! Each [`Storage::write`] is one redb write transaction committed with
//! `Durability::Immediate`: when it returns, the group is on stable storage
//! (redb syncs the data pages and then the header that makes them live, so
//! a crash leaves the previous commit or this one). A delete removes the
//! key. `last_commit_ts` only grows.
//!
//! redb checksums its pages but verifies them only when it repairs a file
//! (or when [`RedbOptions::check_integrity_on_open`] asks), not on every
//! read. So that damage to the file never becomes wrong data, every value
//! carries its own checksum ([`codec`](crate::codec)) and the meta table
//! keeps the number of live keys and the XOR of their
//! [`entry_digest`](crate::codec::entry_digest)s, updated in the same
//! transaction as the data: recovery recomputes both and refuses a store
//! where an entry went missing, came back or changed its timestamp.
//!
//! After an unclean shutdown redb repairs the file when it is opened: it
//! walks every tree to rebuild its page allocator, which takes time
//! proportional to the file (`docs/storage.md` has the measurements).
//! [`RedbOptions::quick_repair`] makes every commit also record the
//! allocator state, so that the repair is quick, at the price of writing
//! that state with each commit.

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ::redb::backends::FileBackend;
use ::redb::{Builder, Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
use khonsu_core::Key;
use snafu::{IntoError, ResultExt};

use crate::codec::{ValueDecoder, entry_digest, stored_commit_ts};
use crate::dir::{DataDir, Found};
use crate::error::guard;
use crate::error::{AdapterSnafu, BackendError, CorruptSnafu, IoSnafu, NotAStoreSnafu, Result};
use crate::traits::ScanTally;
use crate::{
    Error, RecoveredEntry, RecoveredState, Scanned, Storage, StorageMutation, StorageStats,
    WriteFailure, WriteGroup,
};

/// The adapter's name in manifests and messages.
pub(crate) const ADAPTER: &str = "redb";
/// The database file inside the data directory.
pub(crate) const DATA_FILE: &str = "data.redb";

const DATA: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("khonsu_data");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("khonsu_meta");
const META_FORMAT: &str = "format";
const META_LAST_TS: &str = "last_commit_ts";
const META_KEY_COUNT: &str = "key_count";
const META_DIGEST: &str = "digest";
const STORE_FORMAT: u64 = 1;

/// What a redb file holds, as far as opening it goes.
enum Format {
    /// A Khonsu store of this format version.
    Khonsu(u64),
    /// Tables of someone else.
    Foreign(Vec<String>),
    /// No Khonsu format record.
    Unformatted,
}

/// Options of [`RedbStorage::open_with`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RedbOptions {
    /// Record redb's allocator state in every commit, so that opening after
    /// a crash skips the full repair (redb's `set_quick_repair`). Default
    /// `false`: commits write less, and a crash costs a repair that reads
    /// the whole file at the next open.
    pub quick_repair: bool,
    /// Verify the checksum of every page when opening, not only after a
    /// crash (redb's `set_check_integrity_on_open`). Default `false`: every
    /// value carries its own checksum, which recovery verifies anyway.
    pub check_integrity_on_open: bool,
    /// redb's page cache, in bytes. Default 64 MiB: Khonsu keeps the data
    /// in memory and reads the file only at recovery.
    pub cache_size: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            quick_repair: false,
            check_integrity_on_open: false,
            cache_size: 64 << 20,
        }
    }
}

/// A durable [`Storage`] on redb, in a data directory.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_storage::{CommitRecord, RedbStorage, Storage, StorageMutation, WriteGroup};
///
/// let dir = tempfile::tempdir()?;
/// let batch = Arc::new(RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![7])) as _)])?);
/// {
///     let store = RedbStorage::open(dir.path())?;
///     let commit = CommitRecord { commit_ts: 5, mutations: vec![StorageMutation::put("k", batch.clone())?] };
///     store.write(WriteGroup::new(&[&commit]))?; // durable when it returns
/// }
/// let store = RedbStorage::open(dir.path())?; // a restart
/// let state = store.recover()?;
/// assert_eq!(state.last_commit_ts, 5);
/// assert_eq!(*state.entries[0].batch, *batch);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedbStorage {
    /// Always `Some` until dropped (taken out so that its drop, which
    /// writes to the file, runs under the panic guard).
    db: Option<Database>,
    file: PathBuf,
    options: RedbOptions,
    counters: Arc<Counters>,
    repaired: bool,
    // Last: the directory lock is released after the database is closed.
    dir: DataDir,
}

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
    /// Test-only fault injection: fail every sync once this many succeeded.
    #[cfg(test)]
    fail_syncs_after: AtomicU64,
}

impl RedbStorage {
    /// Opens (or creates) the redb store in `dir` with default options.
    ///
    /// # Errors
    /// [`Error::Locked`] when another handle has `dir` open,
    /// [`Error::NotAStore`] for a directory or file that is not a Khonsu
    /// redb store, [`Error::Corrupt`] for a damaged file, and I/O errors;
    /// each names the path.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// Opens (or creates) the redb store in `dir`.
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self> {
        Self::open_counted(dir.as_ref(), options, Arc::default())
    }

    fn open_counted(dir: &Path, options: RedbOptions, counters: Arc<Counters>) -> Result<Self> {
        let (data_dir, found) = DataDir::open(dir, ADAPTER, DATA_FILE)?;
        let file = dir.join(DATA_FILE);
        let exists = file.exists();
        if found == Found::Existing && !exists {
            return NotAStoreSnafu {
                path: &file,
                reason: "its manifest says redb, but the database file is missing",
            }
            .fail();
        }
        if found == Found::New && !exists {
            // Created under a temporary name and renamed into place whole,
            // so that a crash during creation leaves nothing half made.
            create_file(dir, &file, &options)?;
        }
        let repaired = Arc::new(AtomicBool::new(false));
        let db = open_database(&file, &options, &counters, &repaired, found)?;
        let store = Self {
            db: Some(db),
            file,
            options,
            counters,
            repaired: repaired.load(Ordering::Relaxed),
            dir: data_dir,
        };
        store.initialize()?;
        if found == Found::New {
            store.dir.finish_creation(ADAPTER)?;
        }
        Ok(store)
    }

    /// Checks that the file is a Khonsu store of this format, reading only
    /// (a store is not written before recovery has checked it), under the
    /// panic guard.
    fn initialize(&self) -> Result<()> {
        let file = self.file.clone();
        let format = guard(&file, "open", || self.read_format())?;
        let not_ours = |reason: String| {
            NotAStoreSnafu {
                path: &file,
                reason,
            }
            .build()
        };
        match format {
            Format::Khonsu(STORE_FORMAT) => Ok(()),
            Format::Khonsu(other) => Err(not_ours(format!(
                "its store format is {other}, this build reads {STORE_FORMAT}"
            ))),
            Format::Foreign(tables) => Err(not_ours(format!(
                "it is a redb database with other tables ({tables:?})"
            ))),
            // A file of ours always has its tables: it is renamed into
            // place only after they are made.
            Format::Unformatted => Err(not_ours("it has no khonsu_meta format record".to_owned())),
        }
    }

    /// What the file holds, read in a read transaction.
    fn read_format(&self) -> Result<Format> {
        let txn = self
            .db()?
            .begin_read()
            .map_err(|e| self.adapter_error("begin a read transaction in", e))?;
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(|e| self.adapter_error("list the tables of", e))?
            .map(|t| ::redb::TableHandle::name(&t).to_owned())
            .collect();
        let foreign: Vec<String> = tables
            .iter()
            .filter(|t| *t != "khonsu_data" && *t != "khonsu_meta")
            .cloned()
            .collect();
        if !foreign.is_empty() {
            return Ok(Format::Foreign(foreign));
        }
        let has = |name: &str| tables.iter().any(|t| t == name);
        if !(has("khonsu_meta") && has("khonsu_data")) {
            return Ok(Format::Unformatted);
        }
        let meta = txn
            .open_table(META)
            .map_err(|e| self.adapter_error("open the meta table of", e))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| self.adapter_error("read", e))?
            .map(|v| v.value());
        Ok(format.map_or(Format::Unformatted, Format::Khonsu))
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database file.
    #[must_use]
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The options it was opened with.
    #[must_use]
    pub fn options(&self) -> &RedbOptions {
        &self.options
    }

    /// Whether opening found the file needing repair (an unclean shutdown)
    /// and repaired it.
    #[must_use]
    pub fn was_repaired(&self) -> bool {
        self.repaired
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
    /// of the meta table against what it visited (unless `visit` stopped
    /// early). Used by recovery (which stops at the first damaged value)
    /// and by `khonsu inspect` (which reports them all).
    ///
    /// # Errors
    /// Backend failures reading the file. A count or digest that does not
    /// match is not an error of the call: it is returned in
    /// [`Scanned::integrity`].
    pub fn scan(
        &self,
        mut visit: impl FnMut(Key, std::result::Result<RecoveredEntry, Error>) -> bool,
    ) -> Result<Scanned> {
        guard(&self.file, "read", || {
            let txn = self
                .db()?
                .begin_read()
                .map_err(|e| self.adapter_error("begin a read transaction in", e))?;
            let meta = txn
                .open_table(META)
                .map_err(|e| self.adapter_error("open the meta table of", e))?;
            let read_meta = |key| -> Result<u64> {
                Ok(meta
                    .get(key)
                    .map_err(|e| self.adapter_error("read", e))?
                    .map_or(0, |v| v.value()))
            };
            let last_commit_ts = read_meta(META_LAST_TS)?;
            let (want_count, want_digest) = (read_meta(META_KEY_COUNT)?, read_meta(META_DIGEST)?);
            let data = txn
                .open_table(DATA)
                .map_err(|e| self.adapter_error("open the data table of", e))?;
            let range = data.iter().map_err(|e| self.adapter_error("iterate", e))?;
            let (mut tally, mut complete) = (ScanTally::default(), true);
            let mut decoder = ValueDecoder::default();
            for item in range {
                let (key, value) = item.map_err(|e| self.adapter_error("read", e))?;
                let key = Key::from(key.value());
                let entry = tally.entry(&self.file, &key, decoder.decode(value.value().to_vec()));
                if !visit(key, entry) {
                    complete = false;
                    break;
                }
            }
            let (count, digest) = (tally.count, tally.digest);
            let integrity = if complete && (count, digest) != (want_count, want_digest) {
                Err(CorruptSnafu {
                    path: self.file.clone(),
                    key: "-".to_owned(),
                    message: format!(
                        "the store's contents do not match its meta table: {count} keys \
                         (digest {digest:#018x}) found, {want_count} (digest \
                         {want_digest:#018x}) recorded; entries were lost, resurrected or \
                         changed by damage to the file"
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
        })
    }

    fn adapter_error(&self, operation: &'static str, error: impl Into<BackendError>) -> Error {
        adapter_error(&self.file, operation, error)
    }

    fn db(&self) -> Result<&Database> {
        self.db.as_ref().ok_or_else(|| {
            adapter_error(
                &self.file,
                "use the closed database",
                std::io::Error::other("closed"),
            )
        })
    }

    /// Fails every sync after `n` more succeed (unit tests of the failure
    /// classification only).
    #[cfg(test)]
    fn fail_syncs_after(&self, n: u64) {
        let done = self.counters.syncs.load(Ordering::SeqCst);
        self.counters
            .fail_syncs_after
            .store(done + n + 1, Ordering::SeqCst);
    }
}

/// Creates a new store's database file: initialized as `data.redb.tmp`
/// (a leftover one from a crash is replaced), synced, renamed to `file`,
/// directory synced.
fn create_file(dir: &Path, file: &Path, options: &RedbOptions) -> Result<()> {
    let tmp = dir.join(format!("{DATA_FILE}.tmp"));
    if tmp.exists() {
        std::fs::remove_file(&tmp).context(IoSnafu {
            operation: "remove the leftover of an interrupted creation",
            path: &tmp,
        })?;
    }
    {
        let db = open_database(
            &tmp,
            options,
            &Arc::default(),
            &Arc::new(AtomicBool::new(false)),
            Found::New,
        )?;
        guard(&tmp, "initialize", || create_tables(&db, &tmp))?;
        guard(&tmp, "close", || {
            drop(db);
            Ok(())
        })?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .context(IoSnafu {
            operation: "sync",
            path: &tmp,
        })?;
    std::fs::rename(&tmp, file).context(IoSnafu {
        operation: "rename the new database file into place at",
        path: file,
    })?;
    crate::dir::sync_dir(dir)
}

/// Creates the tables and the meta records of a new store.
fn create_tables(db: &Database, file: &Path) -> Result<()> {
    let failed = |operation, e: ::redb::Error| adapter_error(file, operation, e);
    let txn = db
        .begin_write()
        .map_err(|e| failed("begin a write transaction in", e.into()))?;
    {
        let mut meta = txn
            .open_table(META)
            .map_err(|e| failed("create the meta table of", e.into()))?;
        meta.insert(META_FORMAT, STORE_FORMAT)
            .map_err(|e| failed("initialize", e.into()))?;
        for key in [META_LAST_TS, META_KEY_COUNT, META_DIGEST] {
            meta.insert(key, 0)
                .map_err(|e| failed("initialize", e.into()))?;
        }
        txn.open_table(DATA)
            .map_err(|e| failed("create the data table of", e.into()))?;
    }
    txn.commit()
        .map_err(|e| failed("commit the initialization of", e.into()))
}

fn adapter_error(path: &Path, operation: &'static str, error: impl Into<BackendError>) -> Error {
    AdapterSnafu {
        adapter: ADAPTER,
        operation,
        path,
    }
    .into_error(error.into())
}

fn open_database(
    file: &Path,
    options: &RedbOptions,
    counters: &Arc<Counters>,
    repaired: &Arc<AtomicBool>,
    found: Found,
) -> Result<Database> {
    let handle = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)
        .context(IoSnafu {
            operation: "open",
            path: file,
        })?;
    let backend = CountingBackend {
        inner: FileBackend::new(handle).map_err(|e| adapter_error(file, "open", e))?,
        counters: Arc::clone(counters),
    };
    let mut builder = Builder::new();
    let flag = Arc::clone(repaired);
    builder
        .set_cache_size(options.cache_size)
        .set_check_integrity_on_open(options.check_integrity_on_open)
        .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed));
    guard(file, "open", || {
        builder.create_with_backend(backend).map_err(|e| {
            // A file that redb cannot read is ours and damaged when the
            // manifest names it, and foreign otherwise.
            let foreign = found == Found::New;
            match e {
                ::redb::DatabaseError::Storage(::redb::StorageError::Corrupted(message)) => {
                    CorruptSnafu {
                        path: file,
                        key: "-".to_owned(),
                        message,
                    }
                    .build()
                }
                ::redb::DatabaseError::Storage(::redb::StorageError::Io(io))
                    if io.kind() == std::io::ErrorKind::InvalidData
                        || io.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    if foreign {
                        NotAStoreSnafu {
                            path: file,
                            reason: format!("it is not a redb database ({io})"),
                        }
                        .build()
                    } else {
                        CorruptSnafu {
                            path: file,
                            key: "-".to_owned(),
                            message: format!("redb cannot read it: {io}"),
                        }
                        .build()
                    }
                }
                other => adapter_error(file, "open", other),
            }
        })
    })
}

impl Storage for RedbStorage {
    fn name(&self) -> &'static str {
        ADAPTER
    }

    fn write(&self, group: WriteGroup<'_>) -> Result<(), WriteFailure> {
        if group.is_empty() {
            return Ok(());
        }
        group.check_keys().map_err(WriteFailure::NothingWritten)?;
        let not_written = |operation, e: ::redb::Error| {
            WriteFailure::NothingWritten(self.adapter_error(operation, e))
        };
        let mut txn = self
            .db()
            .map_err(WriteFailure::NothingWritten)?
            .begin_write()
            .map_err(|e| not_written("begin a write transaction in", e.into()))?;
        txn.set_quick_repair(self.options.quick_repair);
        let mut bytes = 0_u64;
        {
            let mut data = txn
                .open_table(DATA)
                .map_err(|e| not_written("open the data table of", e.into()))?;
            // Changes to the live-key count and digest (see the module docs).
            let (mut added, mut removed, mut digest) = (0_u64, 0_u64, 0_u64);
            for (commit_ts, mutation) in group.mutations() {
                let key = mutation.key().as_bytes();
                bytes += key.len() as u64;
                let old = match mutation {
                    StorageMutation::Put { encoded, .. } => {
                        let value = encoded.stored(commit_ts);
                        bytes += value.len() as u64;
                        digest ^= entry_digest(key, commit_ts);
                        added += 1;
                        data.insert(key, &*value)
                            .map_err(|e| not_written("insert into", e.into()))?
                    }
                    StorageMutation::Delete { .. } => data
                        .remove(key)
                        .map_err(|e| not_written("delete from", e.into()))?,
                };
                if let Some(old) = old {
                    // An old value whose header is damaged leaves the digest
                    // wrong, which recovery reports: better than trusting it.
                    digest ^= entry_digest(key, stored_commit_ts(old.value()).unwrap_or(0));
                    removed += 1;
                }
            }
            let mut meta = txn
                .open_table(META)
                .map_err(|e| not_written("open the meta table of", e.into()))?;
            let read_meta = |key| {
                meta.get(key)
                    .map(|v| v.map_or(0, |v| v.value()))
                    .map_err(|e| not_written("read", e.into()))
            };
            let last = read_meta(META_LAST_TS)?;
            let count = read_meta(META_KEY_COUNT)?;
            let old_digest = read_meta(META_DIGEST)?;
            let updates = [
                (META_LAST_TS, last.max(group.last_commit_ts())),
                (META_KEY_COUNT, (count + added).saturating_sub(removed)),
                (META_DIGEST, old_digest ^ digest),
            ];
            for (key, v) in updates {
                meta.insert(key, v)
                    .map_err(|e| not_written("update", e.into()))?;
            }
        }
        // From here on the outcome may be unknown: redb may have synced the
        // data pages and failed on the header, or the sync itself failed.
        txn.commit().map_err(|e| {
            WriteFailure::OutcomeUnknown(self.adapter_error("commit a write transaction to", e))
        })?;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.counters
            .commits
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn recover(&self) -> Result<RecoveredState> {
        Scanned::recover(|visit| self.scan(visit))
    }

    fn stats(&self) -> StorageStats {
        StorageStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RedbStorage {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            // Closing writes to the file; a damaged one can make redb panic
            // here, and a panic must not escape a drop.
            let _ = guard(&self.file, "close", || {
                drop(db);
                Ok(())
            });
        }
    }
}

/// redb's file backend, counting syncs (and failing them on demand in
/// unit tests).
#[derive(Debug)]
struct CountingBackend {
    inner: FileBackend,
    counters: Arc<Counters>,
}

type IoResult<T> = std::result::Result<T, std::io::Error>;
type LockResult<T> = std::result::Result<T, ::redb::BackendError>;

impl StorageBackend for CountingBackend {
    fn len(&self) -> IoResult<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> IoResult<()> {
        #[cfg(test)]
        {
            let limit = self.counters.fail_syncs_after.load(Ordering::SeqCst);
            if limit != 0 && self.counters.syncs.load(Ordering::SeqCst) + 1 >= limit {
                return Err(std::io::Error::other("injected fsync failure"));
            }
        }
        self.inner.sync_data()?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> IoResult<()> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> IoResult<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommitRecord;
    use arrow_array::{Int64Array, RecordBatch};

    fn batch(v: i64) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap(),
        )
    }

    fn commit(ts: u64, keys: &[&str]) -> CommitRecord {
        CommitRecord {
            commit_ts: ts,
            mutations: keys
                .iter()
                .map(|k| StorageMutation::put(*k, batch(ts.cast_signed())).unwrap())
                .collect(),
        }
    }

    #[test]
    fn a_failed_sync_is_an_unknown_outcome_and_nothing_is_lost_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStorage::open(dir.path()).unwrap();
        store.write(WriteGroup::new(&[&commit(1, &["a"])])).unwrap();
        store.fail_syncs_after(0);
        let failed = commit(2, &["b"]);
        let err = store.write(WriteGroup::new(&[&failed])).unwrap_err();
        assert!(err.is_outcome_unknown(), "{err:?}");
        drop(store);
        // Reopened, the store holds the first commit and perhaps the second,
        // never a part of one.
        let store = RedbStorage::open(dir.path()).unwrap();
        let state = store.recover().unwrap();
        let keys: Vec<&[u8]> = state.entries.iter().map(|e| e.key.as_bytes()).collect();
        assert!(
            keys == [b"a".as_slice()] || keys == [b"a".as_slice(), b"b"],
            "{keys:?}"
        );
        store.write(WriteGroup::new(&[&commit(3, &["c"])])).unwrap();
    }

    #[test]
    fn counts_one_write_per_group_and_its_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStorage::open(dir.path()).unwrap();
        let before = store.stats();
        let (a, b) = (commit(1, &["a", "b"]), commit(2, &["c"]));
        store.write(WriteGroup::new(&[&a, &b])).unwrap();
        let after = store.stats();
        assert_eq!(after.writes - before.writes, 1);
        assert_eq!(after.commits - before.commits, 2);
        assert!(after.syncs > before.syncs);
        assert_eq!(store.recover().unwrap().entries.len(), 3);
    }
}
