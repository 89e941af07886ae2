//! [`inspect`]: what a data directory holds, with every value verified.

use std::path::{Path, PathBuf};

use khonsu_core::{Key, Timestamp};
use snafu::OptionExt;

use crate::dir::read_manifest;
use crate::error::{NotAStoreSnafu, Result};
use crate::{Error, RecoveredEntry, RedbStorage};

/// Damaged values an [`Inspection`] keeps the errors of (it counts them all).
pub const KEPT_DAMAGE: usize = 16;

/// What [`inspect`] found in a data directory.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// The adapter its manifest names.
    pub adapter: String,
    /// Keys whose value decodes.
    pub keys: u64,
    /// Rows of those values.
    pub rows: u64,
    /// Arrow memory those values take once loaded.
    pub value_bytes: u64,
    /// The stored newest commit timestamp.
    pub last_commit_ts: Timestamp,
    /// The newest commit timestamp of a value (at most `last_commit_ts` in
    /// a healthy store: deletes advance only the latter).
    pub newest_value_ts: Timestamp,
    /// Bytes of every file in the directory.
    pub bytes_on_disk: u64,
    /// Whether opening found an unclean shutdown and repaired the file
    /// (redb).
    pub repaired: bool,
    /// Values whose bytes are damaged, plus a failed integrity check
    /// (counted).
    pub damaged: u64,
    /// Values whose bytes are intact (their checksums match) but that this
    /// build cannot decode ([`Error::Undecodable`]): not damage.
    pub undecodable: u64,
    /// The errors of the first [`KEPT_DAMAGE`] damaged or undecodable
    /// values, naming file and key.
    pub damage: Vec<Error>,
}

impl Inspection {
    /// Whether every value decoded and the timestamps agree.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.damaged == 0 && self.undecodable == 0 && self.newest_value_ts <= self.last_commit_ts
    }

    /// Whether the files are damaged (a damaged value, a failed integrity
    /// check, timestamps that disagree), as opposed to holding intact
    /// values this build cannot decode.
    #[must_use]
    pub fn is_damaged(&self) -> bool {
        self.damaged > 0 || self.newest_value_ts > self.last_commit_ts
    }
}

/// Opens the store in `dir` as the engine would (taking its lock, and
/// repairing it if the last process crashed), reads every value back and
/// reports what it holds. The directory must already hold a store: it is
/// never created.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch};
/// use khonsu_storage::{CommitRecord, RedbStorage, Storage, StorageMutation, WriteGroup, inspect};
///
/// let dir = tempfile::tempdir()?;
/// let batch = Arc::new(RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2])) as _)])?);
/// let commit = CommitRecord { commit_ts: 9, mutations: vec![StorageMutation::put("k", batch)?] };
/// RedbStorage::open(dir.path())?.write(WriteGroup::new(&[&commit]))?;
///
/// let report = inspect(dir.path())?;
/// assert_eq!((report.adapter.as_str(), report.keys, report.rows), ("redb", 1, 2));
/// assert_eq!(report.last_commit_ts, 9);
/// assert!(report.is_healthy());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::NotAStore`] when `dir` holds no Khonsu manifest or names an
/// adapter this build lacks; every error of opening the store (a damaged
/// file, a lock held by another process).
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection> {
    let dir = dir.as_ref();
    let manifest = read_manifest(dir)?.context(NotAStoreSnafu {
        path: dir,
        reason: "it has no KHONSU manifest",
    })?;
    let mut report = Inspection {
        dir: dir.to_path_buf(),
        adapter: manifest.adapter.clone(),
        keys: 0,
        rows: 0,
        value_bytes: 0,
        last_commit_ts: 0,
        newest_value_ts: 0,
        bytes_on_disk: 0,
        repaired: false,
        damaged: 0,
        undecodable: 0,
        damage: Vec::new(),
    };
    let mut visit = |_: Key, entry: std::result::Result<RecoveredEntry, Error>| {
        match entry {
            Ok(entry) => {
                report.keys += 1;
                report.rows += entry.batch.num_rows() as u64;
                report.value_bytes += entry.batch.get_array_memory_size() as u64;
                report.newest_value_ts = report.newest_value_ts.max(entry.commit_ts);
            }
            Err(e) => {
                if matches!(e, Error::Undecodable { .. }) {
                    report.undecodable += 1;
                } else {
                    report.damaged += 1;
                }
                if report.damage.len() < KEPT_DAMAGE {
                    report.damage.push(e);
                }
            }
        }
        true
    };
    let (last_commit_ts, repaired, bytes_on_disk, integrity) = match manifest.adapter.as_str() {
        crate::redb_adapter::ADAPTER => {
            let store = RedbStorage::open(dir)?;
            let scanned = store.scan(&mut visit)?;
            (
                scanned.last_commit_ts,
                store.was_repaired(),
                store.bytes_on_disk()?,
                scanned.integrity.err(),
            )
        }
        #[cfg(feature = "fjall")]
        crate::fjall_adapter::ADAPTER => {
            let store = crate::FjallStorage::open(dir)?;
            // Every table file against its checksum first (opening checked
            // the version files): reading a damaged one is then not
            // fjall's to discover.
            store.verify_files()?;
            let scanned = store.scan(&mut visit)?;
            (
                scanned.last_commit_ts,
                false,
                store.bytes_on_disk()?,
                scanned.integrity.err(),
            )
        }
        other => {
            return NotAStoreSnafu {
                path: dir,
                reason: format!(
                    "it holds a {other} store, and this build opens only {:?}",
                    crate::adapters()
                ),
            }
            .fail();
        }
    };
    if let Some(e) = integrity {
        report.damaged += 1;
        report.damage.push(e);
    }
    report.last_commit_ts = last_commit_ts;
    report.repaired = repaired;
    report.bytes_on_disk = bytes_on_disk;
    Ok(report)
}
