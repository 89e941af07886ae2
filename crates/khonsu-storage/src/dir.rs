//! The data directory: a manifest naming the adapter, a lock file held
//! while a store is open, and the adapter's own files.
//!
//! ```text
//! DIR/
//!   KHONSU       manifest, written last when the store is created:
//!                  khonsu data directory
//!                  format 1
//!                  adapter redb
//!   LOCK         locked (flock) by the process that has the store open
//!   data.redb    the redb adapter's database file      (adapter redb)
//!   fjall/       the fjall adapter's database directory (adapter fjall)
//! ```
//!
//! Opening a directory never takes over something that is not a Khonsu
//! store: a directory holding other files and no manifest, a manifest of
//! another adapter or of a newer format, and a second open while the lock
//! is held are all errors that name the path, and nothing is changed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use snafu::{ResultExt, ensure};

use crate::error::{IoSnafu, LockedSnafu, NotAStoreSnafu, Result};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "KHONSU";
/// The lock file's name.
pub const LOCK_FILE: &str = "LOCK";
/// The on-disk format this build writes and reads.
pub const FORMAT: u32 = 1;

const MANIFEST_TITLE: &str = "khonsu data directory";

/// Whether a store was found or is being created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The manifest exists: the store was created before.
    Existing,
    /// No manifest: the adapter creates its files, then calls
    /// [`DataDir::finish_creation`].
    New,
}

/// An open, locked data directory. The lock is released when it drops.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

/// What a manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The on-disk format.
    pub format: u32,
    /// The adapter that owns the store (`redb`, `fjall`).
    pub adapter: String,
}

/// Reads the manifest of `dir` without opening or locking the store.
/// `Ok(None)` when there is none.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when it cannot be read,
/// [`Error::NotAStore`](crate::Error::NotAStore) when it is not a Khonsu
/// manifest.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).context(IoSnafu {
                operation: "read the manifest",
                path,
            });
        }
    };
    let mut lines = text.lines();
    let not_ours = |reason: &str| {
        NotAStoreSnafu {
            path: path.clone(),
            reason: reason.to_owned(),
        }
        .build()
    };
    if lines.next() != Some(MANIFEST_TITLE) {
        return Err(not_ours(
            "its manifest does not start with \"khonsu data directory\"",
        ));
    }
    let format = lines
        .next()
        .and_then(|l| l.strip_prefix("format "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| not_ours("its manifest has no valid \"format N\" line"))?;
    let adapter = lines
        .next()
        .and_then(|l| l.strip_prefix("adapter "))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| not_ours("its manifest has no \"adapter NAME\" line"))?;
    Ok(Some(Manifest { format, adapter }))
}

impl DataDir {
    /// Opens `path` as the data directory of `adapter`, whose own file or
    /// directory inside it is `adapter_entry`, creating the directory if it
    /// does not exist, and takes its lock.
    pub(crate) fn open(path: &Path, adapter: &str, adapter_entry: &str) -> Result<(Self, Found)> {
        if path.exists() && !path.is_dir() {
            return NotAStoreSnafu {
                path,
                reason: "it is a file, not a directory",
            }
            .fail();
        }
        if !path.exists() {
            fs::create_dir_all(path).context(IoSnafu {
                operation: "create the data directory",
                path,
            })?;
            // The new directory's entry must be durable too, or a power
            // loss could take the whole store, acknowledged commits and all.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        if read_manifest(path)?.is_none() {
            // Refuse to move into a directory that holds anything but what
            // an interrupted creation of this adapter leaves behind, before
            // creating the lock file in it.
            refuse_foreign(path, adapter_entry)?;
        }
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .context(IoSnafu {
                operation: "open the lock file",
                path: &lock_path,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return LockedSnafu {
                    dir: path,
                    lock: lock_path,
                }
                .fail();
            }
            Err(fs::TryLockError::Error(error)) => {
                return Err(error).context(IoSnafu {
                    operation: "lock",
                    path: lock_path,
                });
            }
        }
        let dir = Self {
            path: path.to_path_buf(),
            _lock: lock,
        };
        // Read again under the lock: another process may have created it, or
        // started to create another adapter's store.
        let found = match read_manifest(path)? {
            None => {
                refuse_foreign(path, adapter_entry)?;
                Found::New
            }
            Some(manifest) => {
                ensure!(
                    manifest.format == FORMAT,
                    NotAStoreSnafu {
                        path,
                        reason: format!(
                            "its format is {}, this build reads format {FORMAT}",
                            manifest.format
                        ),
                    }
                );
                ensure!(
                    manifest.adapter == adapter,
                    NotAStoreSnafu {
                        path,
                        reason: format!(
                            "it holds a {} store, not a {adapter} one (open it with that adapter)",
                            manifest.adapter
                        ),
                    }
                );
                Found::Existing
            }
        };
        Ok((dir, found))
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the store is created: writes the manifest (to a
    /// temporary file, synced, renamed into place, directory synced), so a
    /// crash leaves either no manifest or a whole one.
    pub(crate) fn finish_creation(&self, adapter: &str) -> Result<()> {
        let tmp = self.path.join(format!("{MANIFEST_FILE}.tmp"));
        let text = format!("{MANIFEST_TITLE}\nformat {FORMAT}\nadapter {adapter}\n");
        let mut file = File::create(&tmp).context(IoSnafu {
            operation: "create",
            path: &tmp,
        })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .context(IoSnafu {
                operation: "write",
                path: &tmp,
            })?;
        let manifest = self.path.join(MANIFEST_FILE);
        fs::rename(&tmp, &manifest).context(IoSnafu {
            operation: "rename the manifest into place at",
            path: &manifest,
        })?;
        sync_dir(&self.path)
    }

    /// Bytes of every file under the directory.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the directory cannot be walked.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        bytes_under(&self.path)
    }
}

/// Bytes of every file under `path` (recursively).
pub(crate) fn bytes_under(path: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in entries(path)? {
        let meta = entry.metadata().context(IoSnafu {
            operation: "stat",
            path: entry.path(),
        })?;
        total += if meta.is_dir() {
            bytes_under(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The entries of the directory `path`.
fn entries(path: &Path) -> Result<Vec<fs::DirEntry>> {
    fs::read_dir(path)
        .and_then(Iterator::collect)
        .context(IoSnafu {
            operation: "list",
            path,
        })
}

/// Syncs a directory, so that a rename or a new file in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .context(IoSnafu {
            operation: "sync the directory",
            path,
        })
}

/// Refuses a directory without a manifest that holds anything but the lock
/// file, a leftover temporary manifest and `adapter_entry`.
fn refuse_foreign(path: &Path, adapter_entry: &str) -> Result<()> {
    let foreign = foreign_entries(path, adapter_entry)?;
    ensure!(
        foreign.is_empty(),
        NotAStoreSnafu {
            path,
            reason: format!(
                "it has no {MANIFEST_FILE} manifest and holds other files ({}); \
                 give an empty or new directory",
                foreign.join(", ")
            ),
        }
    );
    Ok(())
}

/// Names in `path` other than the lock file, a leftover temporary
/// manifest, `adapter_entry` and its temporary form (`{adapter_entry}.tmp`,
/// where an adapter builds a new store before renaming it into place).
fn foreign_entries(path: &Path, adapter_entry: &str) -> Result<Vec<String>> {
    let mut foreign = Vec::new();
    for entry in entries(path)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let tmp_manifest = format!("{MANIFEST_FILE}.tmp");
        let tmp_entry = format!("{adapter_entry}.tmp");
        if name != LOCK_FILE && name != adapter_entry && name != tmp_manifest && name != tmp_entry {
            foreign.push(name);
        }
    }
    foreign.sort();
    foreign.truncate(5);
    Ok(foreign)
}
