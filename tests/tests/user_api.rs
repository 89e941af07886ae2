//! The API a first program reaches for (issue 11): appends that never conflict, the `Append`
//! resolution merging only the rows a read-modify-write added, per-write resolution, errors that
//! carry their cause, `atomically_with_info` and retry budgets, key types and ranges, streaming
//! scans and their read dependencies, reads at a pinned past timestamp, metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use khonsu::prelude::*;
use khonsu::{ConflictKind, arrow_utils};
use khonsu_tests::*;

// ---------------------------------------------------------------------------------------------
// Appends

/// Two threads append to one hot key: every append lands exactly once, none aborts, and each
/// thread's rows keep their order (commit order is per-thread program order here).
#[test]
fn concurrent_appends_to_one_key_all_land_without_aborting() {
    const PER_THREAD: i64 = 400;
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        std::thread::scope(|s| {
            for thread in 0..2_i64 {
                let db = &db;
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        let mut t = db.start_transaction();
                        ok(t.append("log", batch(thread * 1_000_000 + i)), "append");
                        // Each try commits: an append is not a conflict at any level.
                        ok(t.commit(), "append commit");
                    }
                });
            }
        });
        let rows = committed_rows(&db, "log").unwrap_or_default();
        assert_eq!(
            rows.len(),
            2 * usize::try_from(PER_THREAD).unwrap(),
            "{iso}"
        );
        for thread in 0..2_i64 {
            let mine: Vec<i64> = rows
                .iter()
                .copied()
                .filter(|v| v / 1_000_000 == thread)
                .map(|v| v % 1_000_000)
                .collect();
            assert_eq!(
                mine,
                (0..PER_THREAD).collect::<Vec<_>>(),
                "{iso}: thread {thread}"
            );
        }
        let m = db.metrics();
        assert_eq!(m.aborts.total(), 0, "{iso}: {m:?}");
        assert_eq!(m.commits, 2 * 400, "{iso}");
    }
}

/// Appends interleaved with a race: T1 and T2 both start, both append, commit in either order —
/// both land, in commit order, and neither has a read dependency on the key.
#[test]
fn appends_land_in_commit_order_and_create_absent_keys() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut t1 = db.start_transaction();
        let mut t2 = db.start_transaction();
        ok(t1.append("log", batch_of(&[1, 2])), "t1 append");
        ok(t2.append("log", batch_of(&[3])), "t2 append");
        commit(t2);
        let info = commit(t1);
        assert_eq!(
            info.appended,
            vec![key("log")],
            "{iso}: appended onto T2's commit"
        );
        assert_eq!(committed_rows(&db, "log"), Some(vec![3, 1, 2]), "{iso}");
    }
}

#[test]
fn a_read_sees_the_committed_value_then_the_staged_rows() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("log", 1)]);
    let mut t = db.start_transaction();
    ok(t.append("log", batch_of(&[2])), "append");
    ok(t.append("log", batch_of(&[3, 4])), "append again");
    assert_eq!(read_rows(&mut t, "log"), Some(vec![1, 2, 3, 4]));
    let scanned = ok(t.scan(..), "scan");
    assert_eq!(values(&scanned[0].1), vec![1, 2, 3, 4]);
    // Nothing visible before commit.
    assert_eq!(committed_rows(&db, "log"), Some(vec![1]));
    commit(t);
    assert_eq!(committed_rows(&db, "log"), Some(vec![1, 2, 3, 4]));

    // After a staged write an append extends it; after a delete it starts afresh.
    let mut t = db.start_transaction();
    write(&mut t, "a", 10);
    ok(t.append("a", batch(11)), "append after write");
    delete(&mut t, "b");
    ok(t.append("b", batch(20)), "append after delete");
    commit(t);
    assert_eq!(committed_rows(&db, "a"), Some(vec![10, 11]));
    assert_eq!(committed_rows(&db, "b"), Some(vec![20]));
}

/// Reading the key makes an append a read-modify-write: at a snapshot level, a concurrent append
/// makes that read stale, so it aborts; at `ReadCommitted` it lands.
#[test]
fn an_append_after_reading_the_key_is_validated_as_a_read() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        seed_values(&db, &[("log", 1)]);
        let mut t = db.start_transaction();
        assert_eq!(read_rows(&mut t, "log"), Some(vec![1]));
        ok(t.append("log", batch(2)), "append");
        db.atomically(|o| o.append("log", batch(3))).unwrap();
        let result = t.commit();
        if iso == TransactionIsolation::ReadCommitted {
            ok(result, "rc commit");
            assert_eq!(committed_rows(&db, "log"), Some(vec![1, 3, 2]));
        } else {
            assert_conflict(
                &expect_err(result, "stale read"),
                &ConflictKind::WriteWrite,
                &key("log"),
            );
            assert_eq!(committed_rows(&db, "log"), Some(vec![1, 3]), "{iso}");
        }
    }
}

#[test]
fn an_append_of_another_schema_is_refused_and_loses_nothing() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("log", 1)]);
    let mut t = db.start_transaction();
    write(&mut t, "other", 5);
    let err = expect_err(t.append("log", utf8_batch("x")), "append of a string batch");
    assert!(matches!(err, Error::Append { .. }), "{err}");
    assert!(err.to_string().contains("log"), "{err}");
    // The transaction stays usable and commits what it staged.
    commit(t);
    assert_eq!(committed_rows(&db, "log"), Some(vec![1]));
    assert_eq!(committed(&db, "other"), Some(5));

    // The schema changes between the append and the commit: the commit aborts, nothing of it
    // visible.
    let mut t = db.start_transaction();
    ok(t.append("log", batch(2)), "append");
    write(&mut t, "also", 7);
    db.atomically(|o| o.write("log", utf8_batch("now text")))
        .unwrap();
    let err = expect_err(t.commit(), "append onto another schema");
    assert!(is_append_error(&err), "{err}");
    assert!(!err.is_conflict());
    assert_eq!(committed(&db, "also"), None);
}

/// The bug of the issue: at `ReadCommitted`, `Append` on a read-modify-write duplicated rows
/// (`[1]++[2]` and `[1]++[3]` committed as `[1, 2, 1, 3]`). Only the added rows are appended.
#[test]
fn append_resolution_merges_only_the_rows_a_read_modify_write_added() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Append,
    );
    seed_values(&db, &[("log", 1)]);
    let mut t1 = db.start_transaction();
    let mut t2 = db.start_transaction();
    let base1 = ok(t1.read("log"), "t1 read").unwrap();
    let base2 = ok(t2.read("log"), "t2 read").unwrap();
    let extended = |base: &RecordBatch, v: i64| arrow_utils::append(base, &batch(v)).unwrap();
    ok(t1.write("log", extended(&base1, 2)), "t1 write");
    ok(t2.write("log", extended(&base2, 3)), "t2 write");
    commit(t1);
    let info = commit(t2);
    assert_eq!(info.appended, vec![key("log")]);
    assert_eq!(committed_rows(&db, "log"), Some(vec![1, 2, 3]));

    // A rewrite that does not extend what it read is appended whole (as `lost_update.rs`'s
    // `[10] -> [11]` and `[10] -> [12]` keep both rows).
    let mut t3 = db.start_transaction();
    ok(t3.read("log"), "t3 read");
    ok(t3.write("log", batch_of(&[9])), "t3 rewrite");
    db.atomically(|o| o.append("log", batch(4))).unwrap();
    commit(t3);
    assert_eq!(committed_rows(&db, "log"), Some(vec![1, 2, 3, 4, 9]));

    // Read through a scan, the value read is not known: merging could duplicate rows, so the
    // race is a conflict (retryable) and nothing of it lands.
    let mut t4 = db.start_transaction();
    let scanned = ok(t4.scan_prefix("log"), "t4 scan");
    let extended_log = extended(&scanned[0].1, 5);
    ok(t4.write("log", extended_log), "t4 write");
    db.atomically(|o| o.append("log", batch(6))).unwrap();
    let err = expect_err(t4.commit(), "scan-based rmw under Append");
    assert_conflict(&err, &ConflictKind::WriteWrite, &key("log"));
    assert_eq!(committed_rows(&db, "log"), Some(vec![1, 2, 3, 4, 9, 6]));
}

/// Many threads run the read-modify-write log at `ReadCommitted` with `Append`: every row
/// lands exactly once.
#[test]
fn append_resolution_under_stress_never_duplicates_rows() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Append,
    );
    std::thread::scope(|s| {
        for thread in 0..2_i64 {
            let db = &db;
            s.spawn(move || {
                for i in 0..200 {
                    db.atomically(|t| {
                        let next = batch(thread * 1000 + i);
                        let new = match t.read("log")? {
                            Some(old) => arrow_utils::append(&old, &next)?,
                            None => next,
                        };
                        t.write("log", new)
                    })
                    .unwrap();
                }
            });
        }
    });
    let mut rows = committed_rows(&db, "log").unwrap();
    assert_eq!(rows.len(), 400);
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), 400, "no row twice");
}

// ---------------------------------------------------------------------------------------------
// Per-write resolution

/// One transaction, two writes racing two other commits: the position write keeps `Fail` (the
/// transaction's), the cache write has its own `Ignore` or `Replace` or `Append`.
#[test]
fn a_write_with_its_own_resolution_settles_alone() {
    for iso in LEVELS {
        for own in [
            ConflictResolution::Ignore,
            ConflictResolution::Replace,
            ConflictResolution::Append,
        ] {
            let ctx = format!("{iso}/{own}");
            let db = db(iso, ConflictResolution::Fail);
            seed_values(&db, &[("cache", 1), ("position", 1)]);
            let mut t = db.start_transaction();
            ok(t.write_with("cache", batch(2), own), &ctx);
            db.atomically(|o| o.write("cache", batch(3))).unwrap();
            write(&mut t, "position", 5);
            let info = ok(t.commit(), &ctx);
            let cache = committed_rows(&db, "cache").unwrap();
            match own {
                ConflictResolution::Ignore => {
                    assert_eq!(info.ignored, vec![key("cache")], "{ctx}");
                    assert_eq!(cache, vec![3], "{ctx}");
                }
                ConflictResolution::Replace => {
                    assert_eq!(info.replaced, vec![key("cache")], "{ctx}");
                    assert_eq!(cache, vec![2], "{ctx}");
                }
                _ => {
                    assert_eq!(info.appended, vec![key("cache")], "{ctx}");
                    assert_eq!(cache, vec![3, 2], "{ctx}");
                }
            }
            assert_eq!(committed(&db, "position"), Some(5), "{ctx}");

            // The same race on the position (no own resolution) fails.
            let mut t = db.start_transaction();
            ok(t.write_with("cache", batch(4), own), &ctx);
            write(&mut t, "position", 6);
            db.atomically(|o| o.write("position", batch(7))).unwrap();
            let err = expect_err(t.commit(), &ctx);
            assert_conflict(&err, &ConflictKind::WriteWrite, &key("position"));
            assert_eq!(committed(&db, "position"), Some(7), "{ctx}");
        }
    }
}

/// Precedence: the write's own resolution, then the transaction's, then the database's; a later
/// `write` of the key replaces the value and the resolution.
#[test]
fn resolution_precedence_is_write_then_transaction_then_database() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Replace,
    );
    seed_values(&db, &[("k", 1)]);
    let options = TransactionOptions::new().conflict_resolution(ConflictResolution::Fail);
    let mut t = db.start_transaction_with(options);
    ok(
        t.write_with("k", batch(2), ConflictResolution::Ignore),
        "own",
    );
    db.atomically(|o| o.write("k", batch(3))).unwrap();
    assert_eq!(ok(t.commit(), "ignored").ignored, vec![key("k")]);

    let mut t = db.start_transaction_with(options);
    ok(
        t.write_with("k", batch(2), ConflictResolution::Ignore),
        "own",
    );
    write(&mut t, "k", 4); // replaces the resolution too: the transaction's Fail
    db.atomically(|o| o.write("k", batch(5))).unwrap();
    assert_conflict(
        &expect_err(t.commit(), "fail"),
        &ConflictKind::WriteWrite,
        &key("k"),
    );

    let mut t = db.start_transaction(); // the database's Replace
    write(&mut t, "k", 6);
    db.atomically(|o| o.write("k", batch(7))).unwrap();
    assert_eq!(ok(t.commit(), "replaced").replaced, vec![key("k")]);
    assert_eq!(committed(&db, "k"), Some(6));
}

/// `Ignore` at `Serializable`: the transaction serializes as itself without the dropped write —
/// its reads are still validated.
#[test]
fn ignore_at_serializable_still_validates_the_reads() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("x", 1), ("y", 1)]);
    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, "y"), Some(1));
    ok(
        t.write_with("x", batch(2), ConflictResolution::Ignore),
        "write",
    );
    db.atomically(|o| {
        o.write("x", batch(3))?;
        o.write("y", batch(3))
    })
    .unwrap();
    let err = expect_err(t.commit(), "stale read of y");
    assert_conflict(&err, &ConflictKind::StaleRead, &key("y"));
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug)]
struct OutOfStock {
    sku: &'static str,
}

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is out of stock", self.sku)
    }
}

impl std::error::Error for OutOfStock {}

#[test]
fn errors_carry_their_cause() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("k", 1)]);
    // A batch helper's error converts with `?` inside `atomically`, and is not retried.
    let err = db
        .atomically(|t| {
            let old = t.read("k")?.unwrap();
            let merged = arrow_utils::upsert_by_key(&old, &batch(2), "no-such-column")?;
            t.write("k", merged)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Batch { .. }), "{err}");
    assert!(err.to_string().contains("no-such-column"), "{err}");

    // An application error is kept as the source, retrievable by downcast.
    let err = db
        .atomically(|_t| -> Result<(), Error> {
            let check: Result<(), OutOfStock> = Err(OutOfStock { sku: "A-1" });
            check.map_err(Error::abort)
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "transaction aborted by the application: A-1 is out of stock"
    );
    assert_eq!(err.user_error::<OutOfStock>().map(|e| e.sku), Some("A-1"));
    let source = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<OutOfStock>());
    assert!(source.is_some());

    // An abort says why in one line: kind, key, the other commit's timestamp.
    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, "k"), Some(1));
    write(&mut t, "k", 5);
    let other = db
        .atomically_with_info(|o| o.write("k", batch(9)))
        .unwrap()
        .1;
    let err = expect_err(t.commit(), "write-write");
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("write-write conflict on key k"), "{line}");
    assert!(
        line.contains(&format!("committed at {}", other.commit_ts)),
        "{line}"
    );

    // Long keys are shortened in messages.
    let long = "x".repeat(500);
    seed_values(&db, &[(long.as_str(), 1)]);
    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, long.as_str()), Some(1));
    write(&mut t, long.as_str(), 2);
    db.atomically(|o| o.write(long.as_str(), batch(3))).unwrap();
    let line = expect_err(t.commit(), "long key").to_string();
    assert!(line.len() < 200, "{line}");
}

// ---------------------------------------------------------------------------------------------
// atomically: info and retry budgets

#[test]
fn atomically_with_info_returns_what_ignore_dropped() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Ignore,
    );
    seed_values(&db, &[("k", 1)]);
    let raced = AtomicBool::new(false);
    let (value, info) = db
        .atomically_with_info(|t| {
            write(t, "k", 2);
            if !raced.swap(true, Ordering::Relaxed) {
                db.atomically(|o| o.write("k", batch(3)))?;
            }
            Ok(7)
        })
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(info.ignored, vec![key("k")]);
    assert_eq!(committed(&db, "k"), Some(3));
}

/// A body that always loses its race: the time budget ends the retries long before the count
/// would (a million), and the last conflict is returned.
#[test]
fn atomically_gives_up_when_its_time_budget_runs_out() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("k", 1)]);
    let options = TransactionOptions::new()
        .max_retries(1_000_000)
        .retry_budget(Duration::from_millis(20));
    let err = db
        .atomically_with(options, |t| {
            let v = read_some(t, "k");
            db.atomically(|o| o.write("k", batch(v + 1)))?;
            t.write("k", batch(v + 1))
        })
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let m = db.metrics();
    assert_eq!(m.atomically_exhausted, 1, "{m:?}");
    assert!(m.atomically_retries >= 1, "{m:?}");
    assert!(m.atomically_retries < 1_000_000, "{m:?}");
    assert_eq!(m.aborts.write_write, m.atomically_retries + 1, "{m:?}");

    // The same from the builder's default.
    let db = Khonsu::builder()
        .max_retries(u32::MAX)
        .retry_budget(Duration::from_millis(20))
        .build()
        .unwrap();
    seed_values(&db, &[("k", 1)]);
    let err = db
        .atomically(|t| {
            let v = read_some(t, "k");
            db.atomically(|o| o.write("k", batch(v + 1)))?;
            t.write("k", batch(v + 1))
        })
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Keys and scans

#[test]
fn every_operation_takes_every_key_type() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    let mut t = db.start_transaction();
    ok(t.write(5_u64, batch(5)), "u64");
    ok(t.write("s", batch(1)), "&str");
    ok(t.write(String::from("string"), batch(2)), "String");
    ok(t.write(&b"bytes"[..], batch(3)), "&[u8]");
    ok(t.write(b"vec".to_vec(), batch(4)), "Vec<u8>");
    ok(t.append(6_u64, batch(6)), "append u64");
    ok(t.delete(7_u64), "delete u64");
    commit(t);
    let mut t = db.start_transaction();
    assert_eq!(read(&mut t, 5_u64), Some(5));
    assert_eq!(read(&mut t, "s"), Some(1));
    assert_eq!(read(&mut t, String::from("string")), Some(2));
    assert_eq!(read(&mut t, &b"bytes"[..]), Some(3));
    assert_eq!(read(&mut t, b"vec".to_vec()), Some(4));
    assert_eq!(read(&mut t, Key::from(6_u64)), Some(6));
    let seven = Key::from(7_u64);
    assert_eq!(read(&mut t, &seven), None);
}

#[test]
fn scans_take_ranges_of_any_key_type() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    db.atomically(|t| {
        for n in 0..30_u64 {
            t.write(n, batch(i64::try_from(n).unwrap()))?;
        }
        for name in ["apple", "apricot", "banana", "cherry"] {
            t.write(name, batch(0))?;
        }
        Ok(())
    })
    .unwrap();
    let mut t = db.start_transaction();
    let keys =
        |rows: Vec<(Key, Arc<RecordBatch>)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(ok(t.scan(10_u64..13), "u64")),
        [10_u64, 11, 12].map(Key::from)
    );
    assert_eq!(
        keys(ok(t.scan(28_u64..=29), "u64 inclusive")),
        [28_u64, 29].map(Key::from)
    );
    assert_eq!(
        keys(ok(t.scan("a".."b"), "&str")),
        ["apple", "apricot"].map(Key::from)
    );
    assert_eq!(
        keys(ok(t.scan("b"..), "from")),
        ["banana", "cherry"].map(Key::from)
    );
    assert_eq!(ok(t.scan(..), "all").len(), 34);
    assert_eq!(
        keys(ok(
            t.scan(String::from("apricot")..String::from("c")),
            "String"
        )),
        ["apricot", "banana"].map(Key::from)
    );
    assert!(ok(t.scan("z".."a"), "inverted").is_empty());
}

#[test]
fn a_streaming_scan_is_lazy_limited_reversible_and_sees_own_writes() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    db.atomically(|t| {
        (0..1_000_u64).try_for_each(|n| t.write(n, batch(i64::try_from(n).unwrap())))
    })
    .unwrap();
    let mut t = db.start_transaction();
    // Own writes: a delete inside the first page, a put past it, an append.
    delete(&mut t, 1_u64);
    write(&mut t, 500_u64, -500);
    ok(t.append(2_u64, batch(22)), "append");
    write(&mut t, 5_000_u64, 5_000);
    let all: Vec<(Key, Arc<RecordBatch>)> = t.scan_iter(..).collect::<Result<_, _>>().unwrap();
    let eager = ok(t.scan(..), "eager scan");
    assert_eq!(all.len(), eager.len());
    for ((a, x), (b, y)) in all.iter().zip(&eager) {
        assert_eq!(a, b);
        assert_eq!(values(x), values(y), "{a}");
    }
    assert_eq!(all.len(), 1_000);
    assert_eq!(values(&all[1].1), vec![2, 22]);
    let firsts: Vec<Key> = t
        .scan_iter(..)
        .limit(3)
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(firsts, [0_u64, 2, 3].map(Key::from));
    let lasts: Vec<Key> = t
        .scan_iter(..)
        .reverse()
        .limit(3)
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(lasts, [5_000_u64, 999, 998].map(Key::from));
    let reversed: Vec<Key> = t
        .scan_iter(..)
        .reverse()
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut forward: Vec<Key> = eager.iter().map(|(k, _)| k.clone()).collect();
    forward.reverse();
    assert_eq!(reversed, forward);
    let middle: Vec<Key> = t
        .scan_iter(498_u64..502)
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(middle, [498_u64, 499, 500, 501].map(Key::from));
}

/// The dependency of a streaming scan is the stretch it went through: an insert inside it is a
/// phantom (abort), an insert past where a `limit` stopped it is not.
#[test]
fn a_streaming_scan_records_the_range_it_went_through() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    db.atomically(|t| {
        (0..100_u64)
            .step_by(10)
            .try_for_each(|n| t.write(n, batch(0)))
    })
    .unwrap();
    // Stopped by the limit at key 20: an insert at 55 is outside what it read.
    let mut t = db.start_transaction();
    let seen: Vec<Key> = t
        .scan_iter(..)
        .limit(3)
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seen.len(), 3);
    write(&mut t, "out", 1);
    db.atomically(|o| o.write(55_u64, batch(1))).unwrap();
    ok(t.commit(), "insert past the limit is no phantom");

    // An insert inside what it read is one.
    let mut t = db.start_transaction();
    let seen: Vec<Key> = t
        .scan_iter(..)
        .limit(3)
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seen.last(), Some(&Key::from(20_u64)));
    write(&mut t, "out", 2);
    db.atomically(|o| o.write(15_u64, batch(1))).unwrap();
    assert_phantom(&expect_err(t.commit(), "phantom"), &Key::from(15_u64));

    // Run to its end over an empty range: the whole range is a dependency.
    let mut t = db.start_transaction();
    assert_eq!(t.scan_iter(200_u64..300).count(), 0);
    write(&mut t, "out", 3);
    db.atomically(|o| o.write(250_u64, batch(1))).unwrap();
    assert_phantom(
        &expect_err(t.commit(), "phantom through an empty range"),
        &Key::from(250_u64),
    );
}

// ---------------------------------------------------------------------------------------------
// Reads at a past timestamp

#[test]
fn a_pinned_timestamp_stays_readable_after_reclamation() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("price", 100), ("gone", 1)]);
    let pin = db.pin_snapshot();
    for v in 101..200 {
        db.atomically(|t| t.write("price", batch(v))).unwrap();
    }
    db.atomically(|t| t.delete("gone")).unwrap();
    db.collect_garbage();
    let mut then = ok(db.start_transaction_at(pin.ts()), "start at the pin");
    assert_eq!(then.snapshot_ts(), pin.ts());
    assert_eq!(read(&mut then, "price"), Some(100));
    assert_eq!(read(&mut then, "gone"), Some(1));
    assert!(then.is_read_only());
    assert!(matches!(
        then.write("price", batch(0)),
        Err(Error::ReadOnly { .. })
    ));
    // The pin can go: the transaction holds the snapshot.
    drop(pin);
    db.collect_garbage();
    assert_eq!(read(&mut then, "price"), Some(100));
    let past = then.snapshot_ts();
    drop(then);
    db.collect_garbage();
    assert_eq!(db.stats().versions, 1, "nothing pinned any more");

    // An unpinned past timestamp, or a future one, is refused.
    let err = expect_err(db.start_transaction_at(past), "unpinned");
    assert!(matches!(err, Error::NotRetained { .. }), "{err}");
    let err = expect_err(db.start_transaction_at(db.visible_ts() + 10), "future");
    assert!(matches!(err, Error::NotRetained { .. }), "{err}");
    // The newest visible timestamp is always readable.
    let mut now = ok(db.start_transaction_at(db.visible_ts()), "now");
    assert_eq!(read(&mut now, "price"), Some(199));
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[test]
fn metrics_count_commits_aborts_and_latency() {
    let db = conservative_db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    seed_values(&db, &[("a", 1)]);
    let mut reader = db.start_transaction();
    read(&mut reader, "a");
    commit(reader);
    // A stale read and a write-write conflict.
    let mut t = db.start_transaction();
    read(&mut t, "a");
    write(&mut t, "b", 1);
    let mut u = db.start_transaction();
    write(&mut u, "b", 2);
    db.atomically(|o| o.write("a", batch(2))).unwrap();
    expect_err(t.commit(), "stale read");
    db.atomically(|o| o.write("b", batch(3))).unwrap();
    expect_err(u.commit(), "write-write");
    let _ = db.atomically(|_t| -> Result<(), Error> { Err(Error::abort("no")) });
    let open = db.start_transaction();
    let m = db.metrics();
    assert_eq!(m.commits, 3, "{m:?}");
    assert_eq!(m.read_only_commits, 1, "{m:?}");
    assert_eq!(m.aborts.stale_read, 1, "{m:?}");
    assert_eq!(m.aborts.write_write, 1, "{m:?}");
    assert_eq!(m.aborts.application, 1, "{m:?}");
    assert_eq!(m.aborts.total(), 3, "{m:?}");
    assert_eq!(m.commit_latency.count(), 3, "{m:?}");
    assert!(m.commit_latency.quantile(1.0) >= m.commit_latency.quantile(0.5));
    assert_eq!(m.open_transactions, 1);
    drop(open);
    let line = m.to_string();
    assert!(
        line.starts_with("commits 3 (read-only 1), aborts 3"),
        "{line}"
    );
}

/// Issue 16, item 8: on an idle database whose only pin at the newest timestamp had expired,
/// `start_transaction_at(newest)` handed out that pin, and the first read failed with
/// `SnapshotTooOld` although the state asked for is the current one.
#[test]
fn the_newest_timestamp_is_readable_even_when_its_pin_expired() {
    let max_age = Duration::from_millis(10);
    let db = ok(Khonsu::builder().max_snapshot_age(max_age).build(), "build");
    ok(db.atomically(|t| t.write("k", batch(1))), "seed");
    let pin = db.pin_snapshot();
    let started = std::time::Instant::now();
    while started.elapsed() <= max_age * 3 {
        std::thread::sleep(max_age); // let the pin expire (no timing is asserted)
    }
    assert_eq!(pin.ts(), db.visible_ts(), "nothing committed since the pin");
    let mut now = ok(
        db.start_transaction_at(pin.ts()),
        "start at the newest timestamp",
    );
    assert_eq!(read(&mut now, "k"), Some(1));
    // An expired pin at an older timestamp is refused plainly, not handed out.
    ok(db.atomically(|t| t.write("k", batch(2))), "a later commit");
    let err = expect_err(db.start_transaction_at(pin.ts()), "an expired pin");
    assert!(matches!(err, Error::SnapshotTooOld { .. }), "{err}");
    assert!(!err.is_conflict());
}

/// Issue 16, item 8: at `ReadCommitted` with `Append`, reading a deleted key and then writing
/// it conflicted while the delete's tombstone was still held and appended once it had been
/// reclaimed: one schedule, two outcomes. Both reads saw "absent", so both append.
#[test]
fn a_read_committed_append_after_reading_a_deleted_key_has_one_outcome() {
    for tombstone_held in [true, false] {
        let db = db(
            TransactionIsolation::ReadCommitted,
            ConflictResolution::Append,
        );
        ok(db.atomically(|t| t.write("k", batch(1))), "seed");
        // A transaction older than the delete keeps the key's tombstone.
        let older = tombstone_held.then(|| db.start_transaction());
        ok(db.atomically(|t| t.delete("k")), "delete");
        db.collect_garbage();
        let mut t = db.start_transaction();
        assert_eq!(read(&mut t, "k"), None, "tombstone held: {tombstone_held}");
        ok(
            db.atomically(|w| w.write("k", batch(5))),
            "a concurrent insert",
        );
        write(&mut t, "k", 7);
        let info = commit(t);
        assert_eq!(
            info.appended,
            vec![key("k")],
            "tombstone held: {tombstone_held}"
        );
        assert_eq!(
            committed_rows(&db, "k"),
            Some(vec![5, 7]),
            "tombstone held: {tombstone_held}"
        );
        drop(older);
    }
}

/// Found by review: a write's own `Append` resolution (`write_with`) at `ReadCommitted`, in a
/// transaction whose resolution is `Fail`, aborted instead of appending the rows it added to
/// what it read, because the read's batch was kept only under the transaction's `Append`.
#[test]
fn a_writes_own_append_resolution_merges_what_it_added() {
    let db = db(
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
    );
    ok(db.atomically(|t| t.write("log", batch_of(&[1]))), "seed");
    let mut t1 = db.start_transaction();
    assert_eq!(read_rows(&mut t1, "log"), Some(vec![1]));
    ok(
        t1.write_with("log", batch_of(&[1, 2]), ConflictResolution::Append),
        "stage",
    );
    ok(
        db.atomically(|t| t.write("log", batch_of(&[1, 3]))),
        "concurrent",
    );
    let info = commit(t1);
    assert_eq!(info.appended, vec![key("log")]);
    assert_eq!(committed_rows(&db, "log"), Some(vec![1, 3, 2]));
}

/// Found by review: with an expired and a live pin at the same timestamp,
/// `start_transaction_at` picked the first and refused with `SnapshotTooOld`.
#[test]
fn a_live_pin_is_used_beside_an_expired_one_at_the_same_timestamp() {
    let max_age = Duration::from_millis(10);
    let db = ok(Khonsu::builder().max_snapshot_age(max_age).build(), "build");
    ok(db.atomically(|t| t.write("a", batch(1))), "seed");
    let old = db.pin_snapshot();
    let started = std::time::Instant::now();
    while started.elapsed() <= max_age * 3 {
        std::thread::sleep(max_age); // let the first pin expire (no timing is asserted)
    }
    let young = db.pin_snapshot();
    assert_eq!(old.ts(), young.ts());
    ok(db.atomically(|t| t.write("a", batch(2))), "a later commit");
    let mut t = ok(
        db.start_transaction_at(young.ts()),
        "the live pin retains it",
    );
    assert_eq!(read(&mut t, "a"), Some(1));
}
