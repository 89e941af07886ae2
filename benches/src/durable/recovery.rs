//! The recovery benchmark's child-process phases. The driver re-runs its
//! own binary with `--child <phase> ...` for each, so that every reopen
//! starts with a clean address space (its RSS is the recovered store's)
//! and so that a writer can be killed with `SIGKILL` mid-write.
//!
//! * [`fill`]: create a store of `keys` keys, each a batch of `rows` rows,
//!   `chunk` keys per commit, through Khonsu (`RedbStorage`, group commit)
//!   or as raw redb holding the same bytes; close it cleanly; report the
//!   time and the bytes on disk.
//! * [`reopen`]: open the store (redb repairs it here after a crash), then
//!   build Khonsu over it (which reads and decodes every key into memory);
//!   report both times, whether redb repaired, the keys, and RSS.
//! * [`write_until_killed`]: open and recover the store, print `@ready`,
//!   then overwrite random keys from several committer threads until the
//!   parent kills the process.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use khonsu::storage::RedbOptions;
use khonsu::{Key, Khonsu, RedbStorage};
use snafu::{OptionExt, ResultExt};

use super::engines::REDB_CACHE;
use super::{Accounts, START_BALANCE, backend, encode_stored, key_bytes};
use crate::error::{InvariantSnafu, IoSnafu, KhonsuSnafu, Result};
use crate::rng::SplitMix64;

/// What a phase reports to the driver: `@name value` lines.
pub type Reports = Vec<(&'static str, String)>;

/// Resident memory of this process, in KiB (`VmRSS`, `VmHWM` of
/// `/proc/self/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// Resident set size now.
    pub rss_kib: u64,
    /// Peak resident set size.
    pub hwm_kib: u64,
}

/// Reads [`Mem`] from `/proc/self/status`.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) without `/proc`, or
/// [`Error::Invariant`](crate::Error::Invariant) for a missing field.
pub fn mem() -> Result<Mem> {
    let status = std::fs::read_to_string("/proc/self/status").context(IoSnafu {
        what: "reading /proc/self/status".to_owned(),
    })?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .context(InvariantSnafu {
                engine: "recovery",
                message: format!("/proc/self/status has no readable {name} line"),
            })
    };
    Ok(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// The value stored under `key` by [`fill`]: a one-row account batch, or
/// `rows` rows.
fn value(
    accounts: &Accounts,
    key: u64,
    rows: u64,
    balance: i64,
) -> Result<arrow_array::RecordBatch> {
    if rows <= 1 {
        accounts.batch(key, balance)
    } else {
        accounts.rows(key.saturating_mul(rows), rows)
    }
}

fn redb_options(quick_repair: bool) -> RedbOptions {
    let mut options = RedbOptions::default();
    options.quick_repair = quick_repair;
    options
}

/// Creates a Khonsu store (`khonsu = true`) or a raw redb file holding the
/// same keys and stored bytes in `dir`: `keys` keys of `rows` rows,
/// `chunk` keys per durable commit. Reports `secs`, `bytes_on_disk` (every
/// file of the directory) and `data_file` (the redb file alone).
///
/// # Errors
/// The store's failures.
pub fn fill(dir: &Path, khonsu: bool, keys: u64, rows: u64, chunk: u64) -> Result<Reports> {
    let accounts = Accounts::new();
    let chunk = chunk.max(1);
    let start = Instant::now();
    let data_file;
    if khonsu {
        let name = "khonsu-redb";
        let storage = RedbStorage::open_with(dir, redb_options(false))
            .map_err(|e| backend(name, "open RedbStorage", &e))?;
        data_file = storage.file().to_path_buf();
        let db = Khonsu::builder()
            .storage(Arc::new(storage))
            .build()
            .context(KhonsuSnafu {
                engine: name,
                operation: "build",
            })?;
        let mut first = 0;
        while first < keys {
            let end = (first + chunk).min(keys);
            let mut txn = db.start_transaction();
            for key in first..end {
                txn.write(Key::from(key), value(&accounts, key, rows, START_BALANCE)?)
                    .context(KhonsuSnafu {
                        engine: name,
                        operation: "fill",
                    })?;
            }
            txn.commit().context(KhonsuSnafu {
                engine: name,
                operation: "fill",
            })?;
            first = end;
        }
        drop(db);
    } else {
        let name = "redb";
        data_file = dir.join("raw.redb");
        let db = ::redb::Builder::new()
            .set_cache_size(REDB_CACHE)
            .create(&data_file)
            .map_err(|e| backend(name, "create a redb database", &e))?;
        let table: ::redb::TableDefinition<'static, &[u8], &[u8]> =
            ::redb::TableDefinition::new("data");
        let mut first = 0;
        let mut commit_ts = 0;
        while first < keys {
            let end = (first + chunk).min(keys);
            commit_ts += 1;
            let mut txn = db
                .begin_write()
                .map_err(|e| backend(name, "begin a write transaction", &e))?;
            txn.set_durability(::redb::Durability::Immediate)
                .map_err(|e| backend(name, "set Durability::Immediate", &e))?;
            {
                let mut data = txn
                    .open_table(table)
                    .map_err(|e| backend(name, "open the table", &e))?;
                for key in first..end {
                    let stored =
                        encode_stored(&value(&accounts, key, rows, START_BALANCE)?, commit_ts)?;
                    data.insert(key_bytes(key).as_slice(), stored.as_slice())
                        .map_err(|e| backend(name, "insert", &e))?;
                }
            }
            txn.commit()
                .map_err(|e| backend(name, "commit a write transaction", &e))?;
            first = end;
        }
        drop(db);
    }
    let secs = start.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&data_file)
        .context(IoSnafu {
            what: format!("reading the size of {}", data_file.display()),
        })?
        .len();
    let dir_bytes = if khonsu {
        RedbStorage::open(dir)
            .and_then(|storage| storage.bytes_on_disk())
            .map_err(|e| backend("khonsu-redb", "measure bytes_on_disk", &e))?
    } else {
        file_bytes
    };
    Ok(vec![
        ("secs", format!("{secs:.3}")),
        ("bytes_on_disk", dir_bytes.to_string()),
        ("data_file", file_bytes.to_string()),
    ])
}

/// Opens the Khonsu store in `dir` and recovers it: reports
/// `open_secs` (`RedbStorage::open_with`, where redb repairs after a
/// crash), `build_secs` (`Khonsu::builder().storage(..).build()`: read,
/// verify and decode every key into memory), `repaired`, `keys`, and RSS
/// before and after (`rss_before_kib`, `rss_kib`, `hwm_kib`).
///
/// # Errors
/// The store's failures, or fewer keys than `expect_keys`.
pub fn reopen(dir: &Path, quick_repair: bool, expect_keys: u64) -> Result<Reports> {
    let name = "khonsu-redb";
    let before = mem()?;
    let start = Instant::now();
    let storage = RedbStorage::open_with(dir, redb_options(quick_repair))
        .map_err(|e| backend(name, "open RedbStorage", &e))?;
    let open_secs = start.elapsed().as_secs_f64();
    let repaired = storage.was_repaired();
    let start = Instant::now();
    let db = Khonsu::builder()
        .storage(Arc::new(storage))
        .build()
        .context(KhonsuSnafu {
            engine: name,
            operation: "recover",
        })?;
    let build_secs = start.elapsed().as_secs_f64();
    let after = mem()?;
    let keys = u64::try_from(db.stats().keys).unwrap_or(u64::MAX);
    snafu::ensure!(
        keys == expect_keys,
        InvariantSnafu {
            engine: name,
            message: format!("recovered {keys} keys, expected {expect_keys}"),
        }
    );
    drop(db);
    Ok(vec![
        ("open_secs", format!("{open_secs:.4}")),
        ("build_secs", format!("{build_secs:.4}")),
        ("repaired", repaired.to_string()),
        ("keys", keys.to_string()),
        ("rss_before_kib", before.rss_kib.to_string()),
        ("rss_kib", after.rss_kib.to_string()),
        ("hwm_kib", after.hwm_kib.to_string()),
    ])
}

/// Opens and recovers the store in `dir`, prints `@ready`, then overwrites
/// random keys of `0..keys` (batches of `rows` rows) from `threads`
/// committers, one key per commit, until the process is killed. Returns
/// only on failure.
///
/// # Errors
/// The store's failures.
pub fn write_until_killed(
    dir: &Path,
    quick_repair: bool,
    keys: u64,
    rows: u64,
    threads: usize,
) -> Result<()> {
    let name = "khonsu-redb";
    let storage = RedbStorage::open_with(dir, redb_options(quick_repair))
        .map_err(|e| backend(name, "open RedbStorage", &e))?;
    let db = Khonsu::builder()
        .storage(Arc::new(storage))
        .build()
        .context(KhonsuSnafu {
            engine: name,
            operation: "recover",
        })?;
    println!("@ready 1");
    std::io::stdout().flush().context(IoSnafu {
        what: "writing to stdout".to_owned(),
    })?;
    let accounts = Accounts::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|i| {
                let (db, accounts) = (&db, &accounts);
                scope.spawn(move || -> Result<()> {
                    let mut rng = SplitMix64::new(0xDEAD_BEEF ^ u64::try_from(i).unwrap_or(0));
                    loop {
                        let key = rng.below(keys.max(1));
                        let mut txn = db.start_transaction();
                        let balance = i64::try_from(rng.below(1 << 20)).unwrap_or(0);
                        let written = txn
                            .write(Key::from(key), value(accounts, key, rows, balance)?)
                            .and_then(|()| txn.commit());
                        match written {
                            Err(e) if !e.is_conflict() => {
                                return Err(e).context(KhonsuSnafu {
                                    engine: name,
                                    operation: "overwrite",
                                });
                            }
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => {
                    return InvariantSnafu {
                        engine: name,
                        message: "a writer panicked".to_owned(),
                    }
                    .fail();
                }
            }
        }
        Ok(())
    })
}
