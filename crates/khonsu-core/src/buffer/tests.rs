//! Tests of the buffer's protocols, grouped as the files are.

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch};

use super::walk::HEADS_PER_PIN;
use super::*;
use crate::Pins;

fn batch(v: i64) -> Arc<RecordBatch> {
    Arc::new(RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap())
}

fn value_of(b: &RecordBatch) -> i64 {
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

fn write(buffer: &TxnBuffer, key: &str, ts: Timestamp, v: Option<i64>, pins: &Pins) {
    buffer
        .lock(&Key::from(key), 0)
        .unwrap()
        .install(ts, v.map(batch), pins)
        .unwrap();
}

/// The clock at `ts - 1` with snapshots at `points`: what a commit at `ts`
/// prunes with.
fn pins_before(ts: Timestamp, points: &[Timestamp]) -> Pins {
    Pins::new(ts - 1, points.iter().copied())
}

/// The counters agree with a walk of every chain.
fn assert_counted(buffer: &TxnBuffer) {
    let (keys, versions) = buffer.count_versions();
    let stats = buffer.stats();
    assert_eq!((stats.keys, stats.versions), (keys, versions), "{stats:?}");
    assert_eq!(stats.history_versions, versions - keys.min(versions));
}

mod chain {
    use super::*;

    #[test]
    fn the_first_version_after_a_snapshot_survives_pruning_as_a_mark() {
        // A snapshot at 3 reads version 2; 5, 7 and 9 follow. Pruning keeps
        // 2 (pinned) and the newest, yet a validator at 3 must learn that
        // the first overwrite committed at 5, not 9: a serializable
        // validator that took 9 would miss a transaction ordered between.
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        for ts in [2, 5, 7, 9] {
            write(&buffer, "k", ts, Some(1), &pins_before(ts, &[3]));
        }
        buffer.collect_garbage(&Pins::new(9, [3]));
        assert_eq!(buffer.stats().versions, 2, "5 and 7 are pruned");
        let changed = buffer.overwritten_after(&key, 3).unwrap();
        assert_eq!(changed.first_after, Some(5));
        assert!(changed.exact);
        assert_eq!(changed.latest_ts, 9);
        assert!(!changed.locked);
        assert_eq!(
            buffer.overwritten_after(&key, 6).unwrap().first_after,
            Some(7)
        );
        assert_eq!(buffer.overwritten_after(&key, 9), None);
        // Pruned twice: the mark keeps the oldest.
        write(&buffer, "k", 11, Some(1), &pins_before(11, &[3]));
        write(&buffer, "k", 12, Some(1), &pins_before(12, &[3]));
        buffer.collect_garbage(&Pins::new(12, [3]));
        assert_eq!(
            buffer.overwritten_after(&key, 3).unwrap().first_after,
            Some(5)
        );
        // Versions pruned on both sides of a snapshot: only a lower bound.
        buffer.collect_garbage(&Pins::new(12, []));
        let bound = buffer.overwritten_after(&key, 3).unwrap();
        assert_eq!((bound.first_after, bound.exact), (Some(4), false));
        // The range walk reports the same, and skips unchanged keys.
        write(&buffer, "j", 1, Some(1), &pins_before(1, &[]));
        let mut seen = Vec::new();
        let _ = buffer.for_each_overwritten(Bound::Unbounded, Bound::Unbounded, 3, |k, o| {
            seen.push((k.clone(), o.first_after));
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(seen, vec![(key.clone(), Some(4))]);
        let held = buffer.lock(&Key::from("j"), 0).unwrap();
        assert_eq!(
            buffer.overwritten_after(&Key::from("j"), 3),
            Some(Overwritten {
                locked: true,
                first_after: None,
                exact: true,
                latest_ts: 1
            })
        );
        held.release();
    }

    #[test]
    fn overwrites_without_snapshots_keep_one_or_two_versions() {
        let buffer = TxnBuffer::new();
        for ts in 1..=1000 {
            write(
                &buffer,
                "k",
                ts,
                Some(ts.cast_signed()),
                &pins_before(ts, &[]),
            );
        }
        // The newest plus the one visible at the clock the pins read.
        assert!(buffer.stats().versions <= 2, "{:?}", buffer.stats());
        assert_eq!(buffer.read_at(&Key::from("k"), 1000).commit_ts, 1000);
        assert_counted(&buffer);
    }

    /// The bug of issue 10: one old snapshot kept every version written
    /// since it began. Now it keeps one: its own.
    #[test]
    fn an_old_snapshot_pins_its_version_not_the_history_after_it() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        write(&buffer, "k", 1, Some(1), &pins_before(1, &[]));
        for ts in 2..=10_000 {
            write(
                &buffer,
                "k",
                ts,
                Some(ts.cast_signed()),
                &pins_before(ts, &[1]),
            );
            assert!(
                buffer.stats().versions <= 3,
                "at {ts}: {:?}",
                buffer.stats()
            );
        }
        assert_eq!(buffer.read_at(&key, 1).commit_ts, 1);
        assert_eq!(value_of(&buffer.read_at(&key, 1).value.unwrap()), 1);
        assert_eq!(buffer.read_at(&key, 10_000).commit_ts, 10_000);
        assert_counted(&buffer);
    }

    #[test]
    fn staggered_snapshots_keep_one_version_each() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let mut points = Vec::new();
        for ts in 1..=2_000 {
            if ts % 20 == 0 {
                points.push(ts - 1);
            }
            write(
                &buffer,
                "k",
                ts,
                Some(ts.cast_signed()),
                &pins_before(ts, &points),
            );
        }
        // 100 snapshots, the newest version and the one at the clock.
        assert!(buffer.stats().versions <= 102, "{:?}", buffer.stats());
        for p in &points {
            assert_eq!(buffer.read_at(&key, *p).commit_ts, *p);
        }
        // Once they close, a sweep leaves the newest (and the one at the clock).
        buffer.collect_garbage(&Pins::new(2_000, []));
        assert_eq!(buffer.stats().versions, 1);
        assert_counted(&buffer);
    }

    #[test]
    fn precise_collection_keeps_exactly_the_pinned_versions() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        for ts in 1..=10 {
            write(&buffer, "k", ts, Some(ts.cast_signed()), &Pins::new(0, []));
        }
        assert_eq!(buffer.stats().versions, 10);
        // Snapshots at 3 and 7 (and the clock at 10): versions 3, 7, 10 stay.
        buffer.collect_garbage(&Pins::new(10, [3, 7]));
        assert_eq!(buffer.stats().versions, 3);
        for (at, seen) in [(3, 3), (5, 3), (7, 7), (9, 7), (10, 10)] {
            assert_eq!(buffer.read_at(&key, at).commit_ts, seen, "read at {at}");
        }
        assert_counted(&buffer);
    }

    #[test]
    fn versions_newer_than_the_scanned_clock_survive() {
        // The registry scan read the clock at 10, then snapshots at 11 and
        // 12 registered unseen: everything above 10 must stay.
        let buffer = TxnBuffer::new();
        let key = Key::from("a");
        for ts in [10, 11, 12] {
            write(&buffer, "a", ts, Some(1), &Pins::new(0, []));
        }
        buffer.collect_garbage(&Pins::new(10, [12]));
        assert_eq!(buffer.read_at(&key, 11).commit_ts, 11);
        assert_eq!(buffer.read_at(&key, 10).commit_ts, 10);
    }

    #[test]
    fn installs_must_move_forward_in_time() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let pins = Pins::new(0, []);
        write(&buffer, "k", 5, Some(5), &pins);
        for ts in [3, 5] {
            let result = buffer
                .lock(&key, 0)
                .unwrap()
                .install(ts, Some(batch(1)), &pins);
            assert!(
                matches!(result, Err(crate::Error::StaleInstall { latest: 5, .. })),
                "{result:?}"
            );
        }
        // Nothing was installed and the key still takes newer versions.
        assert_eq!(buffer.stats().versions, 1);
        write(&buffer, "k", 6, Some(6), &pins);
        assert_eq!(buffer.read_at(&key, 5).commit_ts, 5);
        assert_eq!(buffer.read_at(&key, 6).commit_ts, 6);
    }

    #[test]
    fn out_of_range_timestamps_are_refused() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let pins = Pins::new(0, []);
        for ts in [0, crate::MAX_TIMESTAMP + 1, u64::MAX] {
            let result = buffer.lock(&key, 0).unwrap().install(ts, None, &pins);
            assert!(matches!(
                result,
                Err(crate::Error::TimestampOutOfRange { .. })
            ));
        }
        // The key is still usable.
        write(&buffer, "k", 3, Some(3), &pins);
        assert_eq!(buffer.read_at(&key, 3).commit_ts, 3);
        assert_counted(&buffer);
    }

    #[test]
    fn a_very_long_history_is_freed_without_recursion() {
        // Pins with the clock at 0 keep every version; a sweep (and dropping
        // the buffer) must free a million-version chain without recursing
        // once per version, and give every batch back.
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let value = batch(7);
        let keep_all = Pins::new(0, []);
        for ts in 1..=1_000_000 {
            buffer
                .lock(&key, 0)
                .unwrap()
                .install(ts, Some(Arc::clone(&value)), &keep_all)
                .unwrap();
        }
        assert_eq!(buffer.stats().versions, 1_000_000);
        assert_eq!(buffer.read_at(&key, 1).commit_ts, 1);
        buffer.collect_garbage(&Pins::new(1_000_000, []));
        assert_eq!(buffer.stats().versions, 1);
        for ts in 1_000_001..=1_500_000 {
            buffer
                .lock(&key, 0)
                .unwrap()
                .install(ts, Some(Arc::clone(&value)), &keep_all)
                .unwrap();
        }
        drop(buffer);
        let mut rounds = 0;
        while Arc::strong_count(&value) > 1 && rounds < 1_000 {
            sdd::Guard::new().accelerate();
            rounds += 1;
        }
        assert_eq!(Arc::strong_count(&value), 1, "after {rounds} epochs");
    }

    #[test]
    fn versions_dropped_between_snapshots_are_freed() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let kept = batch(1);
        let dropped = batch(2);
        for ts in 1..=10 {
            let value = if [3, 7, 10].contains(&ts) {
                &kept
            } else {
                &dropped
            };
            buffer
                .lock(&key, 0)
                .unwrap()
                .install(ts, Some(Arc::clone(value)), &Pins::new(0, []))
                .unwrap();
        }
        buffer.collect_garbage(&Pins::new(10, [3, 7]));
        assert_eq!(buffer.stats().versions, 3);
        // Unlinked versions go back once no reader can be on them.
        let mut rounds = 0;
        while Arc::strong_count(&dropped) > 1 && rounds < 10_000 {
            sdd::Guard::new().accelerate();
            rounds += 1;
        }
        assert_eq!(Arc::strong_count(&dropped), 1, "after {rounds} rounds");
        for (at, seen) in [(3, 3), (6, 3), (7, 7), (10, 10)] {
            assert_eq!(buffer.read_at(&key, at).commit_ts, seen, "read at {at}");
        }
    }

    /// Readers at pinned snapshots race installs that prune with those very
    /// pins and sweeps: every read returns its snapshot's version, whose
    /// value is its own timestamp.
    #[test]
    fn pruning_never_takes_a_version_a_pinned_reader_needs() {
        const INSTALLS: u64 = 20_000;
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        // Snapshots at 1, 2_001, 4_001, ...: their versions must survive.
        let points: Vec<Timestamp> = (0..10).map(|i| 1 + i * 2_000).collect();
        write(&buffer, "k", 1, Some(1), &Pins::new(0, []));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let (buffer, key, points, done) = (&buffer, &key, &points, &done);
                    scope.spawn(move || {
                        let mut reads = 0_u64;
                        while !done.load(std::sync::atomic::Ordering::Acquire) {
                            // Only snapshots that exist already: versions
                            // up to the newest are installed.
                            let newest = buffer.read_latest(key).commit_ts;
                            for p in points.iter().skip(r).filter(|p| **p <= newest) {
                                let seen = buffer.read_at(key, *p);
                                assert_eq!(seen.commit_ts, *p, "snapshot {p}");
                                assert_eq!(value_of(&seen.value.unwrap()).cast_unsigned(), *p);
                                reads += 1;
                            }
                        }
                        reads
                    })
                })
                .collect();
            for ts in 2..=INSTALLS {
                let visible: Vec<Timestamp> = points.iter().copied().filter(|p| *p < ts).collect();
                let pins = pins_before(ts, &visible);
                write(&buffer, "k", ts, Some(ts.cast_signed()), &pins);
                if ts % 1_000 == 0 {
                    buffer.collect_garbage(&Pins::new(ts, visible.iter().copied()));
                }
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            for reader in readers {
                assert!(reader.join().unwrap() > 0);
            }
        });
        assert!(buffer.stats().versions <= points.len() + 2);
        assert_counted(&buffer);
    }

    /// A value is always read together with its own version's timestamp:
    /// a reader racing installs, aborted intents (which put the same word
    /// back), tombstones and reclamation never sees a value with another
    /// version's timestamp, and reads of the newest version never go back
    /// in time (except to "never written", once a deleted key is reclaimed).
    #[test]
    fn newest_value_and_its_timestamp_are_read_together() {
        const INSTALLS: u64 = 20_000;
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let (mut reads, mut last) = (0_u64, 0);
                loop {
                    let newest = buffer.read_at(&key, LATEST);
                    let reclaimed = newest.commit_ts == 0 && newest.value.is_none();
                    assert!(
                        newest.commit_ts >= last || reclaimed,
                        "went back from {last}"
                    );
                    last = last.max(newest.commit_ts);
                    match &newest.value {
                        Some(b) => assert_eq!(value_of(b).cast_unsigned(), newest.commit_ts),
                        None => assert!(newest.commit_ts.is_multiple_of(7), "{newest:?}"),
                    }
                    let older = buffer.read_at(&key, newest.commit_ts.saturating_sub(1));
                    if let Some(b) = &older.value {
                        assert_eq!(value_of(b).cast_unsigned(), older.commit_ts);
                    }
                    reads += 1;
                    if last == INSTALLS {
                        return reads;
                    }
                }
            });
            for ts in 1..=INSTALLS {
                buffer.lock(&key, u32::MAX).unwrap().release();
                let value = (!ts.is_multiple_of(7)).then(|| batch(ts.cast_signed()));
                buffer
                    .lock(&key, u32::MAX)
                    .unwrap()
                    .install(ts, value, &pins_before(ts, &[]))
                    .unwrap();
                if ts % 1_000 == 0 {
                    buffer.collect_garbage(&Pins::new(ts, []));
                }
            }
            assert!(reader.join().unwrap() > 0);
        });
    }
}

mod intent {
    use super::*;

    #[test]
    fn intents_exclude_each_other() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        let held = buffer.lock(&key, 0).unwrap();
        assert!(matches!(
            buffer.lock(&key, 3),
            Err(crate::Error::IntentBusy { spins: 3, .. })
        ));
        assert!(buffer.intent_state(&key).unwrap().locked);
        held.install(7, Some(batch(1)), &Pins::new(6, [])).unwrap();
        assert_eq!(
            buffer.intent_state(&key).unwrap(),
            IntentState {
                latest_ts: 7,
                locked: false
            }
        );
        drop(buffer.lock(&key, 0).unwrap());
        assert!(!buffer.intent_state(&key).unwrap().locked);
    }

    #[test]
    fn reclamation_is_not_a_writer() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        write(&buffer, "k", 1, Some(1), &Pins::new(0, []));
        let pruning = buffer.try_prune_hold(&key).unwrap();
        // Validators do not see a pruner as a concurrent writer ...
        assert!(!buffer.intent_state(&key).unwrap().locked);
        // ... and nobody else takes the key until it is done.
        assert!(buffer.try_prune_hold(&key).is_none());
        drop(pruning);
        let intent = buffer.lock(&key, 0).unwrap();
        assert!(buffer.try_prune_hold(&key).is_none());
        assert!(buffer.intent_state(&key).unwrap().locked);
        intent.release();
        assert_eq!(buffer.intent_state(&key).unwrap().latest_ts, 1);
    }

    #[test]
    fn aborted_inserts_leave_no_head_behind() {
        let buffer = TxnBuffer::new();
        for i in 0..100_u64 {
            drop(buffer.lock(&Key::from(i), 0).unwrap());
        }
        buffer.lock(&Key::from("x"), 0).unwrap().release();
        assert_eq!(buffer.stats(), BufferStats::default());
        assert_eq!(buffer.count_versions(), (0, 0));
    }
}

mod reclaim {
    use super::*;

    #[test]
    fn deleted_keys_disappear_after_collection() {
        let buffer = TxnBuffer::new();
        write(&buffer, "a", 1, Some(1), &Pins::new(0, []));
        write(&buffer, "a", 2, None, &Pins::new(1, []));
        assert_eq!(buffer.stats().keys, 1);
        assert_eq!(buffer.read_at(&Key::from("a"), 2).value, None);
        buffer.collect_garbage(&Pins::new(2, []));
        assert_eq!(buffer.stats(), BufferStats::default());
        assert_eq!(buffer.count_versions(), (0, 0));
        // The key can be written again afterwards.
        write(&buffer, "a", 3, Some(3), &Pins::new(2, []));
        assert_eq!(buffer.read_at(&Key::from("a"), 3).commit_ts, 3);
        assert_counted(&buffer);
    }

    /// The reclaimed-tombstone bug of issue 10, at the buffer: while an open
    /// snapshot predates a delete, the key keeps its tombstone, so a read of
    /// the newest version still observes the delete's timestamp (a write
    /// based on that read is not mistaken for one based on an older state).
    #[test]
    fn a_deleted_key_keeps_its_tombstone_while_its_head_stays() {
        let buffer = TxnBuffer::new();
        let key = Key::from("k");
        write(&buffer, "k", 1, Some(1), &Pins::new(0, []));
        write(&buffer, "k", 2, None, &Pins::new(1, [0]));
        // A snapshot at 0 is open (it reads nothing, and predates the delete).
        let pins = Pins::new(2, [0]);
        buffer.collect_garbage(&pins);
        let newest = buffer.read_latest(&key);
        assert_eq!((newest.commit_ts, newest.value), (2, None));
        assert_eq!(buffer.read_at(&key, 0).commit_ts, 0);
        assert_eq!(buffer.stats().versions, 1, "the tombstone alone");
        buffer.collect_deferred(&pins, 4);
        assert_eq!(buffer.read_latest(&key).commit_ts, 2);
        // Once no snapshot predates the delete, the key goes.
        buffer.collect_deferred(&Pins::new(2, []), 4);
        assert!(buffer.intent_state(&key).is_none());
        assert_counted(&buffer);
    }

    #[test]
    fn keys_nobody_writes_again_are_revisited_when_their_snapshots_close() {
        let buffer = TxnBuffer::new();
        let registry = crate::SnapshotRegistry::new();
        let oracle = crate::TimestampOracle::new(0);
        let commit = |key: &str, v: i64| {
            let intent = buffer.lock(&Key::from(key), 0).unwrap();
            let ticket = oracle.allocate().unwrap();
            let ts = ticket.ts();
            registry.with_recent_pins(&oracle, |pins| {
                intent.install(ts, Some(batch(v)), pins).unwrap();
            });
            ticket.publish();
            registry.with_recent_pins(&oracle, |pins| buffer.collect_deferred(pins, 1));
        };
        for k in 0..50 {
            commit(&format!("k{k}"), 0);
        }
        let (snapshot, at) = registry.register(&oracle, false);
        // Commits elsewhere until the registry's cached pins include it.
        for round in 0..8 {
            commit("hot", round);
        }
        for v in 1..=2 {
            for k in 0..50 {
                commit(&format!("k{k}"), v);
            }
        }
        for k in 0..50 {
            assert_eq!(
                buffer
                    .read_at(&Key::from(format!("k{k}").as_str()), at)
                    .commit_ts,
                u64::try_from(k + 1).unwrap()
            );
        }
        registry.release(snapshot);
        // Later commits to one hot key revisit the others, a step each.
        for round in 0..400 {
            commit("hot", round);
        }
        // The snapshot's versions are gone: nothing is readable at it any more.
        for k in 0..50 {
            assert_eq!(
                buffer
                    .read_at(&Key::from(format!("k{k}").as_str()), at)
                    .commit_ts,
                0,
                "k{k}"
            );
        }
        assert!(buffer.stats().versions <= 2 * 51, "{:?}", buffer.stats());
        assert_counted(&buffer);
    }

    #[test]
    fn counters_follow_every_change() {
        let buffer = TxnBuffer::new();
        let mut ts = 0;
        let mut next = || {
            ts += 1;
            ts
        };
        for round in 0..200_u64 {
            let key = format!("k{}", round % 17);
            let t = next();
            let value = (!round.is_multiple_of(5)).then_some(1);
            let pins = Pins::new(t - 1, [t / 2, t / 3]);
            write(&buffer, &key, t, value, &pins);
            if round % 50 == 49 {
                buffer.collect_garbage(&Pins::new(t, [t / 2]));
            }
            assert_counted(&buffer);
        }
        let full = buffer.stats();
        assert!(full.history_bytes > 0, "{full:?}");
        buffer.collect_garbage(&Pins::new(ts, []));
        assert_counted(&buffer);
        let after = buffer.stats();
        assert_eq!((after.history_versions, after.history_bytes), (0, 0));
    }
}

mod walk {
    use super::*;

    #[test]
    fn scans_skip_long_histories() {
        let buffer = TxnBuffer::new();
        let keep_all = Pins::new(0, []);
        write(&buffer, "a", 1, Some(1), &keep_all);
        for ts in 2..=100 {
            write(&buffer, "b", ts, Some(ts.cast_signed()), &keep_all);
        }
        write(&buffer, "c", 101, Some(101), &keep_all);
        let at = |ts| {
            buffer
                .scan_at(Bound::Unbounded, Bound::Unbounded, ts)
                .into_iter()
                .map(|(k, b)| (k, value_of(&b)))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(1), vec![(Key::from("a"), 1)]);
        assert_eq!(at(50), vec![(Key::from("a"), 1), (Key::from("b"), 50)]);
        assert_eq!(
            at(101),
            vec![
                (Key::from("a"), 1),
                (Key::from("b"), 100),
                (Key::from("c"), 101)
            ]
        );
        let mut heads = Vec::new();
        let _ = buffer.for_each_intent::<()>(Bound::Unbounded, Bound::Unbounded, |k, state| {
            heads.push((k.clone(), state.latest_ts));
            ControlFlow::Continue(())
        });
        assert_eq!(
            heads,
            vec![
                (Key::from("a"), 1),
                (Key::from("b"), 100),
                (Key::from("c"), 101)
            ]
        );
        let stopped = buffer.for_each_intent(Bound::Unbounded, Bound::Unbounded, |k, _| {
            if *k == Key::from("b") {
                ControlFlow::Break(k.clone())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(stopped, ControlFlow::Break(Key::from("b")));
    }

    #[test]
    fn range_walks_resume_across_guard_stretches() {
        let buffer = TxnBuffer::new();
        let count = 2 * HEADS_PER_PIN + 452;
        let n = u64::try_from(count).unwrap();
        for k in 0..n {
            buffer
                .lock(&Key::from(k), 0)
                .unwrap()
                .install(k + 1, Some(batch(1)), &Pins::new(k, []))
                .unwrap();
        }
        let all = buffer.scan_at(Bound::Unbounded, Bound::Unbounded, n);
        assert_eq!(
            all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            (0..n).map(Key::from).collect::<Vec<_>>()
        );
        let (from, to) = (Key::from(1000_u64), Key::from(2100_u64));
        let part = buffer.scan_at(Bound::Excluded(&from), Bound::Included(&to), n);
        assert_eq!(part.len(), 1100);
        assert_eq!(
            part.first().map(|(k, _)| k.clone()),
            Some(Key::from(1001_u64))
        );
        assert_eq!(part.last().map(|(k, _)| k.clone()), Some(to.clone()));
        assert_eq!(
            buffer
                .scan_at(Bound::Unbounded, Bound::Unbounded, n / 2)
                .len() as u64,
            n / 2
        );
        let mut visited = 0_u64;
        let stopped = buffer.for_each_intent(Bound::Unbounded, Bound::Unbounded, |k, state| {
            assert_eq!(*k, Key::from(visited));
            assert_eq!(state.latest_ts, visited + 1);
            visited += 1;
            if visited == 1500 {
                ControlFlow::Break(k.clone())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(stopped, ControlFlow::Break(Key::from(1499_u64)));
        assert_eq!(buffer.count_versions(), (count, count));
        assert_counted(&buffer);
    }

    #[test]
    fn scan_returns_the_visible_version_per_key() {
        let buffer = TxnBuffer::new();
        let keep_all = Pins::new(0, []);
        write(&buffer, "a", 1, Some(1), &keep_all);
        write(&buffer, "b", 2, Some(2), &keep_all);
        write(&buffer, "a", 3, None, &keep_all);
        write(&buffer, "c", 4, Some(4), &keep_all);
        let keys = |ts| -> Vec<Key> {
            buffer
                .scan_at(Bound::Unbounded, Bound::Unbounded, ts)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(keys(2), vec![Key::from("a"), Key::from("b")]);
        assert_eq!(keys(4), vec![Key::from("b"), Key::from("c")]);
        let (a, c) = (Key::from("a"), Key::from("c"));
        let bounded = buffer.scan_at(Bound::Excluded(&a), Bound::Excluded(&c), 4);
        assert_eq!(bounded.len(), 1);
    }
}

mod model {
    use super::super::chain::Head;
    use super::super::reclaim::Tally;
    use super::*;

    /// xorshift, seeded.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random chains, random pins, random walk limits: after pruning, every
    /// pinned read (and every read above `visible`) returns what it returned
    /// before, also for a reader that stood on any version of the old chain
    /// when the pruning happened and walks on from there.
    #[test]
    fn pruning_preserves_every_pinned_read_even_from_a_stale_position() {
        let seed = 0x5eed_u64 ^ u64::from(std::process::id());
        eprintln!("seed {seed}");
        let mut rng = Rng(seed | 1);
        let tally = Tally::default();
        for case in 0..3_000 {
            let head = Head::default();
            let len = 1 + rng.below(12);
            let mut ts = 0;
            for _ in 0..len {
                ts += 1 + rng.below(3);
                let value = (rng.below(4) != 0).then(|| batch(ts.cast_signed()));
                head.push(ts, value);
            }
            let newest = ts;
            let visible = rng.below(newest + 2);
            let points: Vec<Timestamp> =
                (0..rng.below(4)).map(|_| rng.below(visible + 1)).collect();
            let pins = Pins::new(visible, points.iter().copied());
            let mut reads: Vec<Timestamp> = pins.points.clone();
            reads.extend(visible..=newest + 1);
            let before: Vec<_> = reads.iter().map(|r| head.read_at(*r)).collect();
            let guard = sdd::Guard::new();
            // A reader standing on each version of the old chain.
            let stale: Vec<&super::super::chain::Version> = head.chain(&guard).collect();
            let limit = usize::try_from(rng.below(6)).unwrap_or(0);
            let _ = head.prune(&pins, if limit == 5 { usize::MAX } else { limit }, &tally);
            for (r, expected) in reads.iter().zip(&before) {
                let got = head.read_at(*r);
                // A reclaimed tombstone may read as "no version" (ts 0) —
                // never as another value.
                let same = got == *expected
                    || (expected.value.is_none() && got.value.is_none() && got.commit_ts == 0);
                assert!(
                    same,
                    "case {case}: read at {r}: {got:?} != {expected:?} ({pins:?})"
                );
                for start in &stale {
                    if start.ts <= *r {
                        continue; // the reader would have stopped before it
                    }
                    // Walk on from the stale position.
                    let mut cursor = start
                        .older
                        .load(std::sync::atomic::Ordering::Acquire, &guard)
                        .as_ref();
                    let mut found = VersionedValue::default();
                    while let Some(v) = cursor {
                        if v.ts <= *r {
                            found = VersionedValue {
                                commit_ts: v.ts,
                                value: v.value.clone(),
                            };
                            break;
                        }
                        cursor = v
                            .older
                            .load(std::sync::atomic::Ordering::Acquire, &guard)
                            .as_ref();
                    }
                    let same = found == *expected
                        || (expected.value.is_none()
                            && found.value.is_none()
                            && found.commit_ts == 0);
                    assert!(
                        same,
                        "case {case}: from {} read at {r}: {found:?} != {expected:?} ({pins:?})",
                        start.ts
                    );
                }
            }
        }
    }
}
