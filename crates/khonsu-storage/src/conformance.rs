//! Checks of the [`Storage`] contract that an adapter author runs against
//! their own adapter (Khonsu's adapters run them too, in their tests).
//!
//! [`check_adapter`] takes a function that opens the store under test. It
//! is called once for a fresh store and again after each simulated restart
//! (the previous handle is dropped first), and must reopen the same store:
//!
//! ```
//! use khonsu_storage::{RedbStorage, conformance};
//!
//! let dir = tempfile::tempdir()?;
//! conformance::check_adapter(|| RedbStorage::open(dir.path()))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it checks (each failure names the check and what differed):
//!
//! 1. a fresh store recovers empty;
//! 2. every Arrow data type of [`khonsu_arrow_utils::sample`] — fresh and
//!    sliced — round-trips through a write and a restart unchanged, with its
//!    commit timestamp;
//! 3. per key the newest write wins, deletes remove, groups may arrive out
//!    of timestamp order and `last_commit_ts` is their maximum;
//! 4. one group is one write in [`Storage::stats`] (when the adapter counts);
//! 5. an empty group is accepted and changes nothing;
//! 6. the key contract ([`check_key`](crate::check_key)): keys of 1 and
//!    65,535 bytes are accepted by [`Storage::check_key`] and round-trip
//!    through a restart; an empty key and one of 65,536 bytes are refused by
//!    `check_key`, and a group putting one is refused whole, as
//!    [`WriteFailure::NothingWritten`](crate::WriteFailure::NothingWritten),
//!    leaving the store usable; deleting them succeeds and changes nothing;
//! 7. [`Storage::check_value`] refuses what Arrow IPC cannot encode, and
//!    what it encodes but cannot decode again (a `List` nested 100 deep).
//!
//! Crash safety is not something a function call can check: kill a
//! process that writes to the adapter, as Khonsu's `tests/crash_recovery.rs`
//! does, for that.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::{DictionaryArray, Int8Array, RecordBatch, types::Int8Type};
use khonsu_arrow_utils::sample;
use khonsu_core::{Key, Timestamp};

use crate::{CommitRecord, RecoveredState, Result, Storage, StorageMutation, WriteGroup};

/// A failed conformance check.
#[derive(Debug)]
pub struct Failure {
    /// Which check.
    pub check: &'static str,
    /// What differed.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "storage conformance check {:?} failed: {}",
            self.check, self.detail
        )
    }
}

impl std::error::Error for Failure {}

fn fail<T>(check: &'static str, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        check,
        detail: detail.into(),
    })
}

fn step<T>(check: &'static str, what: &str, r: Result<T>) -> Result<T, Failure> {
    r.or_else(|e| fail(check, format!("{what}: {}", snafu::Report::from_error(e))))
}

fn write(
    storage: &dyn Storage,
    check: &'static str,
    commits: &[&CommitRecord],
) -> Result<(), Failure> {
    storage.write(WriteGroup::new(commits)).or_else(|e| {
        fail(
            check,
            format!("write failed: {}", snafu::Report::from_error(e)),
        )
    })
}

/// Expected state: key → (commit ts, batch).
type Model = BTreeMap<Key, (Timestamp, Arc<RecordBatch>)>;

fn compare(check: &'static str, state: &RecoveredState, model: &Model) -> Result<(), Failure> {
    let mut got: Model = BTreeMap::new();
    for entry in &state.entries {
        if got
            .insert(
                entry.key.clone(),
                (entry.commit_ts, Arc::clone(&entry.batch)),
            )
            .is_some()
        {
            return fail(check, format!("key {} recovered twice", entry.key));
        }
    }
    for (key, (ts, batch)) in model {
        match got.remove(key) {
            None => return fail(check, format!("key {key} is missing after recovery")),
            Some((got_ts, _)) if got_ts != *ts => {
                return fail(
                    check,
                    format!("key {key} recovered at ts {got_ts}, written at {ts}"),
                );
            }
            Some((_, got_batch)) if *got_batch != **batch => {
                return fail(
                    check,
                    format!(
                        "key {key}: recovered batch differs (schema {:?}, {} rows; written {:?}, {} rows)",
                        got_batch.schema(),
                        got_batch.num_rows(),
                        batch.schema(),
                        batch.num_rows()
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(key) = got.keys().next() {
        return fail(
            check,
            format!("key {key} was recovered but never written (or was deleted)"),
        );
    }
    Ok(())
}

fn put(check: &'static str, key: &str, batch: RecordBatch) -> Result<StorageMutation, Failure> {
    step(check, "encode", StorageMutation::put(key, Arc::new(batch)))
}

fn record(model: &mut Model, commit: &CommitRecord) {
    for mutation in &commit.mutations {
        match mutation {
            StorageMutation::Put { key, batch, .. } => {
                model.insert(key.clone(), (commit.commit_ts, Arc::clone(batch)));
            }
            StorageMutation::Delete { key } => {
                model.remove(key);
            }
        }
    }
}

/// Runs every check on the adapter that `open` opens (see the module
/// docs). Stops at the first failure.
///
/// # Errors
/// The first [`Failure`].
pub fn check_adapter<S: Storage>(mut open: impl FnMut() -> Result<S>) -> Result<(), Failure> {
    let mut model = Model::new();
    let store = fresh_store_is_empty(&mut open)?;
    let store = every_type_round_trips(store, &mut open, &mut model)?;
    newest_wins_and_deletes_remove(&store, &mut model)?;
    let store = empty_group_changes_nothing(store, &mut open, &model)?;
    drop(the_key_contract_holds(store, &mut open, &mut model)?);
    let store = step("reopen", "open", open())?;
    check_value_refuses_unencodable(&store)?;
    check_value_refuses_undecodable(&store)
}

fn the_key_contract_holds<S: Storage>(
    store: S,
    open: &mut impl FnMut() -> Result<S>,
    model: &mut Model,
) -> Result<S, Failure> {
    let check = "the key contract: keys of 1 to 65,535 bytes";
    let longest = vec![b'k'; khonsu_core::MAX_KEY_LEN];
    let too_long = vec![b'k'; khonsu_core::MAX_KEY_LEN + 1];
    for key in [&b"k"[..], &longest] {
        if let Err(e) = store.check_key(key) {
            return fail(
                check,
                format!(
                    "a {}-byte key is refused: {}",
                    key.len(),
                    snafu::Report::from_error(e)
                ),
            );
        }
    }
    for key in [&b""[..], &too_long] {
        if store.check_key(key).is_ok() {
            return fail(check, format!("a {}-byte key is accepted", key.len()));
        }
        let bad = CommitRecord {
            commit_ts: 30,
            mutations: vec![
                put(check, "contract/fine", one_row(check, 1)?)?,
                step(
                    check,
                    "encode",
                    StorageMutation::put(key, Arc::new(one_row(check, 2)?)),
                )?,
            ],
        };
        match store.write(WriteGroup::new(&[&bad])) {
            Ok(()) => {
                return fail(
                    check,
                    format!("a group putting a {}-byte key was written", key.len()),
                );
            }
            Err(e) if e.is_outcome_unknown() => {
                return fail(
                    check,
                    format!(
                        "a group putting a {}-byte key failed with an unknown outcome \
                         (it must be refused before anything is written): {}",
                        key.len(),
                        snafu::Report::from_error(e)
                    ),
                );
            }
            Err(_) => {}
        }
    }
    let good = CommitRecord {
        commit_ts: 31,
        mutations: vec![
            step(
                check,
                "encode",
                StorageMutation::put(&b"k"[..], Arc::new(one_row(check, 1)?)),
            )?,
            step(
                check,
                "encode",
                StorageMutation::put(&longest[..], Arc::new(one_row(check, 2)?)),
            )?,
            StorageMutation::delete(&b""[..]),
            StorageMutation::delete(&too_long[..]),
        ],
    };
    write(&store, check, &[&good])?;
    record(model, &good);
    compare(check, &step(check, "recover", store.recover())?, model)?;
    drop(store);
    let store = step(check, "reopen", open())?;
    compare(
        check,
        &step(check, "recover after a restart", store.recover())?,
        model,
    )?;
    Ok(store)
}

fn check_value_refuses_undecodable(store: &dyn Storage) -> Result<(), Failure> {
    let check = "check_value refuses what Arrow IPC cannot decode again";
    let batch = step(
        check,
        "build",
        sample::nested_list(100).map_err(|e| arrow_error(&e)),
    )?;
    if store.check_value(&batch).is_ok() {
        return fail(check, "a List nested 100 deep was accepted");
    }
    Ok(())
}

fn fresh_store_is_empty<S: Storage>(open: &mut impl FnMut() -> Result<S>) -> Result<S, Failure> {
    let check = "a fresh store recovers empty";
    let store = step(check, "open", open())?;
    let state = step(check, "recover", store.recover())?;
    if !state.is_empty() {
        return fail(
            check,
            format!(
                "recovered {} keys, last_commit_ts {}",
                state.entries.len(),
                state.last_commit_ts
            ),
        );
    }
    Ok(store)
}

fn every_type_round_trips<S: Storage>(
    store: S,
    open: &mut impl FnMut() -> Result<S>,
    model: &mut Model,
) -> Result<S, Failure> {
    let check = "every data type round-trips through a write and a restart";
    let mut mutations = Vec::new();
    for (i, kind) in sample::types().iter().enumerate() {
        let fresh = step(
            check,
            kind.name(),
            kind.batch(i, 5).map_err(|e| arrow_error(&e)),
        )?;
        let sliced = step(
            check,
            kind.name(),
            kind.batch(i, 9).map_err(|e| arrow_error(&e)),
        )?
        .slice(2, 5);
        mutations.push(put(check, &format!("type/{}/fresh", kind.name()), fresh)?);
        mutations.push(put(check, &format!("type/{}/sliced", kind.name()), sliced)?);
    }
    let types = CommitRecord {
        commit_ts: 10,
        mutations,
    };
    let before = store.stats();
    write(&store, check, &[&types])?;
    record(model, &types);
    compare(check, &step(check, "recover", store.recover())?, model)?;
    let after = store.stats();
    if after.writes != 0 && after.writes != before.writes + 1 {
        return fail(
            "one group is one write",
            format!("writes went from {} to {}", before.writes, after.writes),
        );
    }
    drop(store);
    let store = step(check, "reopen", open())?;
    compare(
        check,
        &step(check, "recover after a restart", store.recover())?,
        model,
    )?;
    Ok(store)
}

fn one_row(check: &'static str, v: i64) -> Result<RecordBatch, Failure> {
    step(
        check,
        "build a batch",
        RecordBatch::try_from_iter([("v", Arc::new(arrow_array::Int64Array::from(vec![v])) as _)])
            .map_err(|e| arrow_error(&e)),
    )
}

fn newest_wins_and_deletes_remove(store: &dyn Storage, model: &mut Model) -> Result<(), Failure> {
    let check = "per key the newest write wins and deletes remove";
    let a = CommitRecord {
        commit_ts: 20,
        mutations: vec![
            put(check, "k/1", one_row(check, 1)?)?,
            put(check, "k/2", one_row(check, 2)?)?,
        ],
    };
    let c = CommitRecord {
        commit_ts: 22,
        mutations: vec![
            StorageMutation::delete("k/1"),
            put(check, "k/2", one_row(check, 22)?)?,
            StorageMutation::delete("k/never-written"),
        ],
    };
    // Written after the group of ts 22: groups are not in timestamp order.
    let b = CommitRecord {
        commit_ts: 21,
        mutations: vec![put(check, "k/3", one_row(check, 3)?)?],
    };
    // A key deleted, then written again.
    let d = CommitRecord {
        commit_ts: 23,
        mutations: vec![put(check, "k/1", one_row(check, 100)?)?],
    };
    for commit in [&a, &c, &b, &d] {
        write(store, check, &[commit])?;
        record(model, commit);
    }
    let state = step(check, "recover", store.recover())?;
    compare(check, &state, model)?;
    if state.last_commit_ts != 23 {
        return fail(
            check,
            format!("last_commit_ts is {}, expected 23", state.last_commit_ts),
        );
    }
    Ok(())
}

fn empty_group_changes_nothing<S: Storage>(
    store: S,
    open: &mut impl FnMut() -> Result<S>,
    model: &Model,
) -> Result<S, Failure> {
    let check = "an empty group is accepted";
    write(&store, check, &[])?;
    drop(store);
    let store = step(check, "reopen", open())?;
    let state = step(check, "recover after a restart", store.recover())?;
    compare(check, &state, model)?;
    if state.last_commit_ts != 23 {
        return fail(
            check,
            format!(
                "last_commit_ts is {} after a restart, expected 23",
                state.last_commit_ts
            ),
        );
    }
    Ok(store)
}

fn check_value_refuses_unencodable(store: &dyn Storage) -> Result<(), Failure> {
    let check = "check_value refuses a dictionary of dictionaries";
    let inner: DictionaryArray<Int8Type> = ["a", "b"].into_iter().collect();
    let nested = step(
        check,
        "build",
        DictionaryArray::<Int8Type>::try_new(Int8Array::from(vec![0, 1]), Arc::new(inner))
            .map_err(|e| arrow_error(&e)),
    )?;
    let batch = step(
        check,
        "build",
        RecordBatch::try_from_iter([("d", Arc::new(nested) as _)]).map_err(|e| arrow_error(&e)),
    )?;
    if store.check_value(&batch).is_ok() {
        return fail(check, "it was accepted");
    }
    Ok(())
}

fn arrow_error(e: &arrow_schema::ArrowError) -> crate::Error {
    crate::Error::backend(format!("building a sample batch failed: {e}"))
}
