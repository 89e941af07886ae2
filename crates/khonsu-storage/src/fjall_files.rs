//! Checks of a fjall directory's own files, before fjall opens them.
//!
//! Each keyspace of a fjall database is an lsm-tree in
//! `fjall/keyspaces/N/`, described by a *version file* `vM` that lists its
//! table files with their checksums; the keyspace's `current` file names
//! the version and holds its checksum:
//!
//! ```text
//! current (25 bytes)   0  8   version id M, little-endian
//!                      8  16  xxh3-128 of the whole file vM, little-endian
//!                      24 1   checksum type (0: xxh3)
//! vM                   an sfa archive; its "tables" section lists, per
//!                      level and run, each table's id (u64), checksum type
//!                      (u8), xxh3-128 of the whole table file (u128) and
//!                      global sequence number (u64)
//! tables/ID            a table file
//! ```
//!
//! lsm-tree writes these checksums and does not check them when it opens
//! the tree: a flipped byte of a version file made it assert, or allocate
//! 32 to 132 GiB from a flipped length and abort the process (53 of 7,984
//! single-bit flips in Khonsu's damage tests), and `khonsu inspect` with
//! it. So the adapter checks every keyspace's version file against
//! `current` (and that every table it lists is there) before fjall reads
//! it; a mismatch is [`Error::Corrupt`] naming the file. Table contents
//! are checked against their checksums by [`check_tables`] — by `inspect`,
//! and to name the file when fjall reports damage as an I/O error.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use snafu::ResultExt;

use crate::Error;
use crate::error::{CorruptSnafu, IoSnafu, Result};

/// Length of a `current` file.
const CURRENT_LEN: usize = 25;

/// One table a version lists.
struct ListedTable {
    path: PathBuf,
    checksum: u128,
}

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    CorruptSnafu {
        path,
        key: "-".to_owned(),
        message: message.into(),
    }
    .build()
}

/// Reads a whole file; a file that is missing is damage (fjall needs it).
fn read(path: &Path, needed_by: &str) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(corrupt(
            path,
            format!("the file is missing ({needed_by} names it)"),
        )),
        Err(e) => Err(e).context(IoSnafu {
            operation: "read",
            path,
        }),
    }
}

/// The keyspace directories of the fjall database in `fjall_dir`.
fn keyspaces(fjall_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = fjall_dir.join("keyspaces");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // No keyspace yet: fjall makes the directory (a store of ours has
        // both keyspaces, which the adapter checks after opening).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).context(IoSnafu {
                operation: "list",
                path: &dir,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.context(IoSnafu {
            operation: "list",
            path: &dir,
        })?;
        if entry.path().is_dir() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Checks the version file of the keyspace in `keyspace` against its
/// `current` file and returns the tables it lists. A keyspace without
/// `current` is left to fjall.
fn check_version(keyspace: &Path) -> Result<Vec<ListedTable>> {
    let current_path = keyspace.join("current");
    if !current_path.exists() {
        return Ok(Vec::new());
    }
    let current = read(&current_path, "the keyspace")?;
    let fields = (
        current.get(..8).and_then(|b| b.try_into().ok()),
        current.get(8..24).and_then(|b| b.try_into().ok()),
        current.get(24),
    );
    let (Some(id), Some(checksum), Some(&kind), CURRENT_LEN) =
        (fields.0, fields.1, fields.2, current.len())
    else {
        return Err(corrupt(
            &current_path,
            format!(
                "it is {} bytes, not the {CURRENT_LEN} of a version pointer",
                current.len()
            ),
        ));
    };
    if kind != 0 {
        return Err(corrupt(
            &current_path,
            format!("its checksum type is {kind}, not 0 (xxh3)"),
        ));
    }
    let (id, checksum) = (u64::from_le_bytes(id), u128::from_le_bytes(checksum));
    let version_path = keyspace.join(format!("v{id}"));
    let version = read(&version_path, &current_path.display().to_string())?;
    let actual = xxhash_rust::xxh3::xxh3_128(&version);
    if actual != checksum {
        return Err(corrupt(
            &version_path,
            format!(
                "its xxh3 checksum is {actual:#034x}; {} recorded {checksum:#034x}",
                current_path.display()
            ),
        ));
    }
    // Intact (as written): its table of contents can be read safely.
    let tables = listed_tables(&version).map_err(|message| {
        corrupt(
            &version_path,
            format!("its checksum matches but its table list does not parse: {message}"),
        )
    })?;
    let listed: Vec<ListedTable> = tables
        .into_iter()
        .map(|(id, checksum)| ListedTable {
            path: keyspace.join("tables").join(id.to_string()),
            checksum,
        })
        .collect();
    for table in &listed {
        if !table.path.exists() {
            return Err(corrupt(
                &table.path,
                format!(
                    "the table file is missing ({} lists it)",
                    version_path.display()
                ),
            ));
        }
    }
    Ok(listed)
}

/// The `(id, checksum)` of every table an intact version file lists.
fn listed_tables(version: &[u8]) -> std::result::Result<Vec<(u64, u128)>, String> {
    let reader = sfa::Reader::from_reader(&mut Cursor::new(version)).map_err(|e| e.to_string())?;
    let section = reader
        .toc()
        .section(b"tables")
        .ok_or("it has no tables section")?;
    let start = usize::try_from(section.pos()).map_err(|e| e.to_string())?;
    let len = usize::try_from(section.len()).map_err(|e| e.to_string())?;
    let bytes = start
        .checked_add(len)
        .and_then(|end| version.get(start..end))
        .ok_or("the tables section lies outside the file")?;
    let mut cursor = Fields(bytes);
    let mut tables = Vec::new();
    for _ in 0..cursor.u8()? {
        for _ in 0..cursor.u8()? {
            for _ in 0..cursor.u32()? {
                let id = cursor.u64()?;
                let kind = cursor.u8()?;
                if kind != 0 {
                    return Err(format!("table {id} has checksum type {kind}, not 0 (xxh3)"));
                }
                let checksum = cursor.u128()?;
                let _global_seqno = cursor.u64()?;
                tables.push((id, checksum));
            }
        }
    }
    Ok(tables)
}

/// Little-endian fields read off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("the tables section ends early")?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        let [byte] = self.take::<1>()?;
        Ok(byte)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn u128(&mut self) -> std::result::Result<u128, String> {
        Ok(u128::from_le_bytes(self.take()?))
    }
}

/// Checks every keyspace's version file and that the tables it lists
/// exist (small files and a `stat` per table: cheap enough for every open).
///
/// # Errors
/// [`Error::Corrupt`] naming the damaged or missing file; I/O errors.
pub(crate) fn check_versions(fjall_dir: &Path) -> Result<()> {
    for keyspace in keyspaces(fjall_dir)? {
        check_version(&keyspace)?;
    }
    Ok(())
}

/// [`check_versions`], then every listed table file against its checksum
/// (reads every table: for `inspect`, and to find which file fjall found
/// damaged).
///
/// # Errors
/// As for [`check_versions`].
pub(crate) fn check_tables(fjall_dir: &Path) -> Result<()> {
    for keyspace in keyspaces(fjall_dir)? {
        for table in check_version(&keyspace)? {
            let bytes = read(&table.path, "its keyspace's version")?;
            let actual = xxhash_rust::xxh3::xxh3_128(&bytes);
            if actual != table.checksum {
                return Err(corrupt(
                    &table.path,
                    format!(
                        "its xxh3 checksum is {actual:#034x}; its version file recorded {:#034x}",
                        table.checksum
                    ),
                ));
            }
        }
    }
    Ok(())
}
