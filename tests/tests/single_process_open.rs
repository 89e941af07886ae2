//! One store, one opener: while a process (or a handle in this process) has a data directory
//! open, a second open fails at once with a clear error naming the directory — no panic, no
//! waiting, and nothing of the first opener's store is disturbed. Once the first handle (every
//! clone of it) is dropped, the directory opens again with everything committed.

use std::path::Path;
use std::time::Duration;

use khonsu::storage;
use khonsu_tests::durable::{
    Adapter, CrashChild, DurableError, check_bank, ensure_bank, report, state, storage_error,
};
use khonsu_tests::*;

const THREADS: usize = 3;
const ACCOUNTS: usize = 8;
/// How long to wait for the child's output before calling it stuck (not a timing assertion).
const STUCK: Duration = Duration::from_secs(120);

fn child_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_crash-child"))
}

/// Asserts that `err` is `storage::Error::Locked` for `dir` and that its report names `dir`.
fn assert_locked(err: &(dyn std::error::Error + 'static), dir: &Path, what: &str) {
    let shown = report(err);
    match storage_error(err) {
        Some(storage::Error::Locked {
            dir: locked, lock, ..
        }) => {
            assert_eq!(locked, dir, "{what}: the error names another directory");
            assert_eq!(
                lock,
                &dir.join("LOCK"),
                "{what}: the error names another lock"
            );
        }
        other => panic!("{what}: expected storage::Error::Locked, got {other:?}:\n{shown}"),
    }
    assert!(
        shown.contains(&dir.display().to_string()) && shown.contains("already open"),
        "{what}: the report should name the directory and say it is open elsewhere:\n{shown}"
    );
}

/// Asserts that `dir` holds a whole bank with at least the acknowledged commits of `acks`.
fn assert_intact(adapter: Adapter, dir: &Path, acks: &[khonsu_tests::durable::Ack]) {
    let db = adapter
        .open(dir)
        .unwrap_or_else(|e| panic!("reopening after the child was killed:\n{}", report(&e)));
    let recovered = must(state(&db), "reading the recovered store");
    let bank = check_bank(&recovered, ACCOUNTS)
        .unwrap_or_else(|v| panic!("the child's store is damaged: {v}\n{recovered:?}"));
    assert!(bank.created, "the child's bank is gone");
    for ack in acks {
        assert!(
            bank.seq(ack.thread) >= ack.seq,
            "acknowledged {ack:?} is lost (stored {})",
            bank.seq(ack.thread)
        );
    }
}

/// A child process has the store open; this process and a second child are refused, and the
/// child keeps committing.
fn second_process_is_refused(adapter: Adapter) {
    let seed = seed("second_process_is_refused");
    let tmp = must(tempfile::tempdir(), "creating a temporary directory");
    let dir = tmp.path().join("store");
    let mut child = must(
        CrashChild::spawn(child_exe(), &dir, adapter, seed, THREADS, ACCOUNTS),
        "starting crash-child",
    );
    assert!(child.wait_ready(STUCK), "the child never got ready");

    // This process: the adapter's own open, and the engine's.
    let err = must_fail(
        adapter.storage(&dir).map(|_| ()),
        "the adapter's open while the child has the store",
    );
    assert_locked(
        &err,
        &dir,
        "the adapter's open while the child has the store",
    );
    let err = must_fail(
        adapter.open(&dir).map(|_| ()),
        "opening the database while the child has the store",
    );
    assert!(matches!(
        err,
        DurableError::Build { .. } | DurableError::OpenStorage { .. }
    ));
    assert_locked(
        &err,
        &dir,
        "opening the database while the child has the store",
    );
    if adapter == Adapter::Redb {
        let err = must_fail(
            khonsu::Khonsu::open(&dir).map(|_| ()),
            "Khonsu::open while the child has the store",
        );
        assert!(
            matches!(err, khonsu::Error::Open { .. }),
            "Khonsu::open: expected Error::Open, got:\n{}",
            report(&err)
        );
        assert_locked(&err, &dir, "Khonsu::open while the child has the store");
    }

    // A second process gives up with the same error (and no `ready`).
    let mut second = must(
        CrashChild::spawn(child_exe(), &dir, adapter, seed, THREADS, ACCOUNTS),
        "starting a second crash-child",
    );
    assert!(
        !second.wait_ready(STUCK),
        "a second process opened an open store"
    );
    let refused = must(second.kill(), "reaping the second crash-child");
    assert!(
        !refused.was_killed() && !refused.status.success() && refused.acks.is_empty(),
        "the second process should exit with an error: {refused:?}"
    );
    assert!(
        refused.stderr.contains(&dir.display().to_string())
            && refused.stderr.contains("already open"),
        "the second process's error should name the directory:\n{}",
        refused.stderr
    );

    // The first child was not disturbed: it keeps committing, and its store is whole.
    let before = child.acks().len();
    assert!(
        child.wait_acks(before + 20, STUCK),
        "the child stopped committing after the refused opens"
    );
    let ran = must(child.kill(), "killing crash-child");
    assert!(
        ran.was_killed(),
        "the child died on its own:\n{}",
        ran.stderr
    );
    eprintln!(
        "{}: child acknowledged {} commits while others were refused",
        adapter.name(),
        ran.acks.len()
    );
    assert_intact(adapter, &dir, &ran.acks);
}

#[test]
fn redb_second_process_is_refused() {
    second_process_is_refused(Adapter::Redb);
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_second_process_is_refused() {
    second_process_is_refused(Adapter::Fjall);
}

/// `Khonsu::open` (redb) on a fjall store: refused while the fjall child has it (locked), and
/// afterwards refused as a store of another adapter; the fjall store stays whole.
#[cfg(feature = "fjall")]
#[test]
fn default_open_of_a_fjall_store_is_refused_and_harmless() {
    let seed = seed("default_open_of_a_fjall_store_is_refused_and_harmless");
    let tmp = must(tempfile::tempdir(), "creating a temporary directory");
    let dir = tmp.path();
    let mut child = must(
        CrashChild::spawn(child_exe(), dir, Adapter::Fjall, seed, THREADS, ACCOUNTS),
        "starting crash-child",
    );
    assert!(child.wait_ready(STUCK) && child.wait_acks(10, STUCK));
    let err = must_fail(
        khonsu::Khonsu::open(dir).map(|_| ()),
        "Khonsu::open of a fjall store",
    );
    assert_locked(
        &err,
        dir,
        "Khonsu::open of a fjall store the child has open",
    );
    let ran = must(child.kill(), "killing crash-child");
    assert!(
        ran.was_killed(),
        "the child died on its own:\n{}",
        ran.stderr
    );

    let err = must_fail(
        khonsu::Khonsu::open(dir).map(|_| ()),
        "Khonsu::open of a fjall store",
    );
    let shown = report(&err);
    assert!(
        storage_error(&err).is_some_and(storage::Error::is_corruption)
            && shown.contains("fjall")
            && shown.contains(&dir.display().to_string()),
        "Khonsu::open of a fjall store should say it is a fjall store:\n{shown}"
    );
    assert!(
        !dir.join("data.redb").exists(),
        "the refused open created a redb file"
    );
    assert_intact(Adapter::Fjall, dir, &ran.acks);
}

/// In one process: a second open while the first database (or any clone of it) is alive
/// fails; after the last clone is dropped, it opens with the data.
fn second_handle_is_refused_until_the_first_is_dropped(adapter: Adapter) {
    let tmp = must(tempfile::tempdir(), "creating a temporary directory");
    let dir = tmp.path();
    let first = must(adapter.open(dir), "the first open");
    assert!(must(ensure_bank(&first, ACCOUNTS), "creating the bank"));
    let expected = must(state(&first), "reading the store");

    let err = must_fail(
        adapter.open(dir).map(|_| ()),
        "a second open in the same process",
    );
    assert_locked(&err, dir, "a second open in the same process");
    let clone = first.clone();
    drop(first);
    let err = must_fail(
        adapter.open(dir).map(|_| ()),
        "a second open in the same process",
    );
    assert_locked(
        &err,
        dir,
        "an open while a clone of the first database is alive",
    );
    // The refused opens did not disturb the open database.
    let mut t = clone.start_transaction();
    write(&mut t, "after-refusal", 1);
    commit(t);
    drop(clone);

    let again = must(
        adapter.open(dir),
        "reopening after the last clone was dropped",
    );
    let mut recovered = must(state(&again), "reading the reopened store");
    assert_eq!(
        recovered.remove(&key("after-refusal")),
        Some(vec![1]),
        "the commit after the refused opens is lost"
    );
    assert_eq!(recovered, expected, "reopening lost or changed data");
    let err = must_fail(
        adapter.open(dir).map(|_| ()),
        "a second open in the same process",
    );
    assert_locked(&err, dir, "a second open of the reopened store");
}

#[test]
fn redb_second_handle_is_refused_until_the_first_is_dropped() {
    second_handle_is_refused_until_the_first_is_dropped(Adapter::Redb);
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_second_handle_is_refused_until_the_first_is_dropped() {
    second_handle_is_refused_until_the_first_is_dropped(Adapter::Fjall);
}
