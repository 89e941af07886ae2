//! Version reclamation: memory stays bounded under endless overwrites, an open snapshot keeps
//! what it can see readable, and deleted keys disappear from the buffer once no snapshot needs
//! them.

use khonsu::prelude::*;
use khonsu_tests::*;

const KEYS: u64 = 10;

fn overwrite_all(db: &Khonsu, rounds: u32, offset: i64) {
    for r in 0..rounds {
        let mut t = db.start_transaction();
        for k in 0..KEYS {
            write(&mut t, k, offset + i64::from(r));
        }
        commit(t);
    }
}

/// 100 000 overwrites (10 000 commits of 10 keys) without any open snapshot: reclamation during
/// commits keeps the number of versions a small multiple of the number of keys, and
/// `collect_garbage` brings it down to one version per key.
#[test]
fn versions_stay_bounded_under_overwrites() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let keys = usize::try_from(KEYS).unwrap();
        let bound = 64 * keys;
        let mut max_seen = 0;
        for chunk in 0..10 {
            overwrite_all(&db, 1_000, chunk * 1_000);
            let s = db.stats();
            max_seen = max_seen.max(s.versions);
            assert_eq!(s.keys, keys, "{iso:?}: {s:?}");
            assert!(
                s.versions <= bound,
                "{iso:?}: {} versions for {keys} keys after {} commits (bound {bound}); automatic reclamation is not keeping up",
                s.versions,
                (chunk + 1) * 1_000
            );
        }
        db.collect_garbage();
        let s = db.stats();
        assert_eq!(s.keys, keys, "{iso:?}");
        assert_eq!(
            s.versions, keys,
            "{iso:?}: one live version per key after collect_garbage: {s:?}"
        );
        assert!(
            committed_all(&db).iter().all(|(_, v)| *v == 9_999),
            "{iso:?}"
        );
        eprintln!("{iso:?}: max versions seen during 100k overwrites: {max_seen}");
    }
}

/// An old snapshot keeps reading its values while 5 000 newer versions are written and garbage
/// is collected; once it is gone, the old versions are reclaimed.
#[test]
fn open_snapshot_keeps_old_values_readable() {
    for iso in SNAPSHOT_LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let keys = usize::try_from(KEYS).unwrap();
        overwrite_all(&db, 1, -1); // every key = -1
        let mut old = db.start_transaction();
        assert_eq!(read(&mut old, key(0_u64)), Some(-1), "{iso:?}");

        overwrite_all(&db, 500, 0);
        db.collect_garbage();
        for k in 0..KEYS {
            assert_eq!(
                read(&mut old, key(k)),
                Some(-1),
                "{iso:?}: old snapshot lost key {k}"
            );
        }
        assert_eq!(scan(&mut old, ..).len(), keys, "{iso:?}");
        assert!(scan(&mut old, ..).iter().all(|(_, v)| *v == -1), "{iso:?}");
        let pinned = db.stats().versions;
        assert!(
            pinned >= 2 * keys,
            "{iso:?}: the old and the newest versions are both live: {pinned}"
        );

        let c = commit(old);
        assert!(c.read_only);
        overwrite_all(&db, 10, 5_000);
        db.collect_garbage();
        let after = db.stats().versions;
        assert!(
            after < pinned,
            "{iso:?}: dropping the snapshot must release versions ({pinned} -> {after})"
        );
        assert_eq!(after, keys, "{iso:?}");
    }
}

/// `collect_garbage` reclaims "every version no active snapshot can see": with one old snapshot
/// open, the versions between it and the newest are visible to nobody and must go too, so the
/// count is about two per key, not 500.
#[test]
fn intermediate_versions_reclaimed_despite_old_snapshot() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    let keys = usize::try_from(KEYS).unwrap();
    overwrite_all(&db, 1, -1);
    let mut old = db.start_transaction();
    assert_eq!(read(&mut old, key(0_u64)), Some(-1));
    overwrite_all(&db, 500, 0);
    db.collect_garbage();
    let pinned = db.stats().versions;
    assert!(
        pinned <= 4 * keys,
        "{pinned} versions for {keys} keys with one old snapshot: versions between the snapshot and the newest are not needed"
    );
    assert_eq!(read(&mut old, key(9_u64)), Some(-1));
    old.rollback();
}

/// A dropped (not committed) snapshot is released too.
#[test]
fn dropped_snapshot_releases_versions() {
    let db = db(
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
    );
    let keys = usize::try_from(KEYS).unwrap();
    overwrite_all(&db, 1, 0);
    let mut old = db.start_transaction();
    read(&mut old, key(1_u64));
    overwrite_all(&db, 100, 1);
    db.collect_garbage();
    assert!(db.stats().versions >= 2 * keys);
    drop(old);
    db.collect_garbage();
    assert_eq!(db.stats().versions, keys);
}

/// Deleted keys leave the buffer once no snapshot can see them.
#[test]
fn deleted_keys_are_reclaimed() {
    for iso in LEVELS {
        let db = db(iso, ConflictResolution::Fail);
        let mut t = db.start_transaction();
        for k in 0..100_u64 {
            write(&mut t, k, 1);
        }
        commit(t);
        assert_eq!(db.stats().keys, 100, "{iso:?}");

        let mut snapshot = db.start_transaction_with(
            TransactionOptions::new().isolation(TransactionIsolation::RepeatableRead),
        );
        let mut t = db.start_transaction();
        for k in 0..90_u64 {
            delete(&mut t, k);
        }
        commit(t);
        db.collect_garbage();
        // The snapshot still sees all 100 keys.
        assert_eq!(scan(&mut snapshot, ..).len(), 100, "{iso:?}");
        drop(snapshot);

        db.collect_garbage();
        let s = db.stats();
        assert_eq!(s.keys, 10, "{iso:?}: {s:?}");
        assert_eq!(s.versions, 10, "{iso:?}: {s:?}");
        assert_eq!(committed_all(&db).len(), 10, "{iso:?}");
    }
}

/// Insert-delete churn over fresh keys does not grow the buffer either.
#[test]
fn insert_delete_churn_stays_bounded() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    for i in 0..5_000_u64 {
        let mut t = db.start_transaction();
        write(&mut t, i, 1);
        if i > 0 {
            delete(&mut t, i - 1);
        }
        commit(t);
    }
    db.collect_garbage();
    let s = db.stats();
    assert_eq!(s.keys, 1, "{s:?}");
    assert_eq!(s.versions, 1, "{s:?}");
}

/// Threads that exit right after using the database must not abort the process. Heads of
/// deleted keys that reclamation unlinks are freed by crossbeam-epoch's deferred destruction,
/// which any thread may run — also while it exits, when its pinning in crossbeam's
/// thread-local destructor happens to collect (every 128th pin) after `sdd`'s thread-local
/// collector is already gone; a head that still held its versions then released them through
/// that collector, panicked inside a thread-local destructor, and aborted the process (seen
/// once in the stress tests). Threads here pin from 0 to 255 times before exiting, so one in
/// each round of 128 exits collecting, while other threads keep unlinking heads.
#[test]
fn threads_exit_cleanly_while_reclaimed_heads_are_freed() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    for round in 0..512_u64 {
        std::thread::scope(|s| {
            s.spawn(|| {
                for k in 0..4_u64 {
                    let key = 1_000 + round * 4 + k;
                    seed_values(&db, &[(key, 1)]);
                    let mut t = db.start_transaction();
                    delete(&mut t, key);
                    commit(t);
                }
                db.collect_garbage();
            });
            s.spawn(|| {
                for _ in 0..round % 256 {
                    let mut t = db.start_transaction();
                    let seen = read(&mut t, 1_000 + round * 4);
                    assert!(matches!(seen, None | Some(1)), "{seen:?}");
                }
            });
        });
    }
    assert_eq!(db.stats().keys, 0, "every deleted key's head was reclaimed");
}
