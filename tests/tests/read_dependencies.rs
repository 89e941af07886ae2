//! Every read of committed data is a dependency, however it was made: a scan over a key the
//! transaction only appended to (it returns the committed rows too), and a streaming scan
//! reshaped (`reverse`, `limit`) after it started yielding. Regressions of issue 16, items 1
//! and 2: both let a stale read commit at `Serializable` (and at `RepeatableRead`, a lost update).

use std::sync::Arc;

use khonsu::ConflictKind;
use khonsu::prelude::*;
use khonsu_tests::*;

/// How a transaction reads the whole key space after staging an append.
#[derive(Clone, Copy, Debug)]
enum ScanKind {
    Scan,
    Prefix,
    Iter,
}

const SCANS: [ScanKind; 3] = [ScanKind::Scan, ScanKind::Prefix, ScanKind::Iter];

/// Reads every key under `l` (the log keys below are `l/...`), as the transaction sees them.
fn scan_all(t: &mut Transaction, how: ScanKind) -> Vec<(Key, Arc<RecordBatch>)> {
    match how {
        ScanKind::Scan => ok(t.scan(..), "scan"),
        ScanKind::Prefix => ok(t.scan_prefix("l/"), "scan_prefix"),
        ScanKind::Iter => ok(t.scan_iter(..).collect::<Result<Vec<_>, _>>(), "scan_iter"),
    }
}

/// From `log = [1]`: T1 appends 9 to the log, scans (seeing `[1, 9]`) and copies what it saw;
/// T2 overwrites the log with `[5]` and commits first. If T1 committed, the log would be
/// `[5, 9]` beside a copy `[1, 9]`: no serial order gives that (T1 after T2 would copy
/// `[5, 9]`; T1 before T2 would leave the log `[5]`). At both snapshot levels T1 must abort.
#[test]
fn a_scan_over_a_staged_append_is_a_read_of_the_committed_rows() {
    for iso in SNAPSHOT_LEVELS {
        for how in SCANS {
            let db = db(iso, ConflictResolution::Fail);
            ok(
                db.atomically(|t| t.write("l/log", batch(1))),
                "seed the log",
            );
            let mut t1 = db.start_transaction();
            ok(t1.append("l/log", batch(9)), "append");
            let seen = scan_all(&mut t1, how);
            let log = seen
                .iter()
                .find(|(k, _)| *k == key("l/log"))
                .map(|(_, v)| values(v));
            assert_eq!(
                log,
                Some(vec![1, 9]),
                "{iso} {how:?}: T1 sees committed ++ staged rows"
            );
            ok(t1.write("l/copy", batch_of(&[1, 9])), "copy");

            let mut t2 = db.start_transaction();
            write(&mut t2, "l/log", 5);
            commit(t2);

            let err = expect_err(t1.commit(), "T1 read a log T2 overwrote");
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("l/log"));
            assert_eq!(committed_rows(&db, "l/log"), Some(vec![5]), "{iso} {how:?}");
            assert_eq!(
                committed(&db, "l/copy"),
                None,
                "{iso} {how:?}: nothing of T1 visible"
            );
        }
    }
}

/// `append k; scan; write k = f(scan)` under `Replace`: the write is a read-modify-write of
/// what the scan returned, so at a snapshot level a concurrent commit to `k` aborts it rather
/// than being replaced (a lost update).
#[test]
fn a_rewrite_of_a_scanned_append_does_not_lose_a_concurrent_update() {
    for iso in SNAPSHOT_LEVELS {
        for how in SCANS {
            let db = db(iso, ConflictResolution::Replace);
            ok(db.atomically(|t| t.write("l/n", batch(10))), "seed");
            let mut t1 = db.start_transaction();
            ok(t1.append("l/n", batch(1)), "append");
            let seen = scan_all(&mut t1, how);
            let total: i64 = seen.iter().flat_map(|(_, v)| values(v)).sum();
            assert_eq!(total, 11, "{iso} {how:?}");
            write(&mut t1, "l/n", total);

            let mut t2 = db.start_transaction();
            write(&mut t2, "l/n", 100);
            commit(t2);

            let err = expect_err(t1.commit(), "T1's rewrite is based on a stale read");
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("l/n"));
            assert_eq!(
                committed(&db, "l/n"),
                Some(100),
                "{iso} {how:?}: T2's update kept"
            );
        }
    }
}

/// The same schedules without the concurrent commit still commit: the dependency is only a
/// read, never a conflict by itself.
#[test]
fn a_scan_over_a_staged_append_commits_when_nothing_changed() {
    for iso in LEVELS {
        for how in SCANS {
            let db = db(iso, ConflictResolution::Fail);
            ok(db.atomically(|t| t.write("l/log", batch(1))), "seed");
            let mut t1 = db.start_transaction();
            ok(t1.append("l/log", batch(9)), "append");
            let _ = scan_all(&mut t1, how);
            ok(t1.write("l/copy", batch_of(&[1, 9])), "copy");
            commit(t1);
            assert_eq!(
                committed_rows(&db, "l/log"),
                Some(vec![1, 9]),
                "{iso} {how:?}"
            );
        }
    }
}

/// Loads keys `0..n` with their own number as value.
fn numbered(n: u64) -> Khonsu {
    // The conservative validation shows every recorded read directly.
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    ok(
        db.atomically(|t| {
            (0..n).try_for_each(|k| t.write(k, batch(i64::try_from(k).unwrap_or(i64::MAX))))
        }),
        "load",
    );
    db
}

/// Starts a streaming scan over `0..n`, yields `forward` keys in ascending order, then
/// reverses it and yields `backward` more (with `limit` applied after the first `next` when
/// `limit` is set). Returns the keys yielded. The transaction writes one unrelated key so that
/// it validates its reads at commit.
fn reshaped_scan(t: &mut Transaction, forward: usize, backward: usize, limit: bool) -> Vec<u64> {
    let mut it = t.scan_iter(..);
    let mut yielded = Vec::new();
    for _ in 0..forward {
        if let Some(entry) = it.next() {
            yielded.push(ok(entry, "next").0);
        }
    }
    let mut it = if limit { it.limit(backward) } else { it };
    it = it.reverse();
    for _ in 0..backward {
        if let Some(entry) = it.next() {
            yielded.push(ok(entry, "next back").0);
        }
    }
    drop(it);
    yielded
        .iter()
        .map(|k| {
            let bytes: [u8; 8] = k.as_bytes().try_into().unwrap_or_default();
            u64::from_be_bytes(bytes)
        })
        .collect()
}

/// A streaming scan reshaped after it started records every key it yielded: a concurrent
/// overwrite of any of them aborts the reader at `Serializable`, whichever direction yielded it.
/// (`reverse()` after `next()` used to record only the stretch after the reversal, so a stale
/// read of a key yielded before it committed.)
#[test]
fn a_reshaped_streaming_scan_records_every_key_it_yielded() {
    const N: u64 = 300; // more than one page of 128
    for limit in [false, true] {
        for (forward, backward) in [(1, 1), (3, 2), (130, 5), (2, 200)] {
            // The yielded keys, from a run that nothing disturbs.
            let db = numbered(N);
            let mut probe = db.start_transaction();
            let yielded = reshaped_scan(&mut probe, forward, backward, limit);
            drop(probe);
            assert_eq!(
                yielded.len(),
                forward + backward,
                "{forward}+{backward} limit {limit}"
            );
            let (ascending, descending) = yielded.split_at(forward);
            assert!(ascending.windows(2).all(|w| w[0] < w[1]), "{yielded:?}");
            assert!(descending.windows(2).all(|w| w[0] > w[1]), "{yielded:?}");
            assert_eq!(
                descending.first(),
                Some(&(N - 1)),
                "reverse starts at the end"
            );
            assert!(
                descending
                    .iter()
                    .all(|k| *k > ascending[ascending.len() - 1])
            );
            // Each yielded key (first, last of each direction), overwritten concurrently.
            let victims = [
                ascending[0],
                ascending[ascending.len() - 1],
                descending[0],
                descending[descending.len() - 1],
            ];
            for victim in victims {
                let db = numbered(N);
                let mut t = db.start_transaction();
                let again = reshaped_scan(&mut t, forward, backward, limit);
                assert_eq!(again, yielded);
                write(&mut t, "elsewhere", 1);
                ok(db.atomically(|w| w.write(victim, batch(-1))), "overwrite");
                let err = expect_err(t.commit(), "the scan read the overwritten key");
                assert!(err.is_conflict(), "victim {victim}: {err}");
            }
            // A key it never reached (between the two stretches) is no dependency.
            let unreached = ascending[ascending.len() - 1] + 1;
            if unreached < descending[descending.len() - 1] {
                let db = numbered(N);
                let mut t = db.start_transaction();
                let _ = reshaped_scan(&mut t, forward, backward, limit);
                write(&mut t, "elsewhere", 1);
                ok(
                    db.atomically(|w| w.write(unreached, batch(-1))),
                    "overwrite",
                );
                commit(t);
            }
        }
    }
}

/// `limit` on a started iterator limits what is still to come, and a limit that stops the
/// scan still records every key yielded before it.
#[test]
fn a_limit_set_after_next_still_records_what_was_yielded() {
    let db = numbered(10);
    let mut t = db.start_transaction();
    let mut it = t.scan_iter(..);
    let first = it.next().map(|e| ok(e, "next").0);
    assert_eq!(first, Some(key(0_u64)));
    let rest: Vec<Key> = ok(it.limit(2).keys().collect(), "rest");
    assert_eq!(rest, [key(1_u64), key(2_u64)]);
    write(&mut t, "elsewhere", 1);
    ok(
        db.atomically(|w| w.write(0_u64, batch(-1))),
        "overwrite key 0",
    );
    let err = expect_err(t.commit(), "key 0 was yielded before the limit");
    assert!(err.is_conflict(), "{err}");
}
