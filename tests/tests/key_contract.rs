//! One key contract for every database and every store: a written key is 1 to 65,535 bytes.
//! An empty key or a longer one is refused at `write` (and `append`) with a clear error, the
//! same with and without storage, on redb and fjall alike; nothing is staged and the database
//! goes on. Regression of issue 16, item 4: both passed the write-time check, fjall asserted
//! inside the group write, and every later commit of every thread was refused until reopen.

use khonsu::MAX_KEY_LEN;
use khonsu::prelude::*;
use khonsu_tests::durable::Adapter;
use khonsu_tests::*;

fn adapters() -> Vec<Adapter> {
    if cfg!(feature = "fjall") {
        vec![Adapter::Redb, Adapter::Fjall]
    } else {
        vec![Adapter::Redb]
    }
}

/// Writes of keys outside the contract are refused, others commit.
fn exercise(db: &Khonsu, what: &str) {
    let longest = vec![b'k'; MAX_KEY_LEN];
    let too_long = vec![b'k'; MAX_KEY_LEN + 1];
    for bad in [Vec::new(), too_long.clone()] {
        let mut t = db.start_transaction();
        let err = expect_err(t.write(bad.as_slice(), batch(1)), "write of a bad key");
        assert!(matches!(err, Error::InvalidKey { .. }), "{what}: {err}");
        assert!(
            err.to_string().contains("1 to 65535 bytes"),
            "{what}: {err}"
        );
        let err = expect_err(t.append(bad.as_slice(), batch(1)), "append of a bad key");
        assert!(matches!(err, Error::InvalidKey { .. }), "{what}: {err}");
        // A delete of such a key is allowed (nothing can be stored under it).
        ok(t.delete(bad.as_slice()), "delete of a bad key");
        write(&mut t, "fine", 1);
        commit(t);
    }
    ok(
        db.atomically(|t| {
            t.write(longest.as_slice(), batch(2))?;
            t.write(&b"x"[..], batch(3))
        }),
        "the longest and the shortest keys",
    );
    // Other threads' commits keep working.
    std::thread::scope(|s| {
        for n in 0..2_i64 {
            s.spawn(move || {
                ok(
                    db.atomically(|t| t.write(format!("thread{n}"), batch(n))),
                    "commit",
                );
            });
        }
    });
}

#[test]
fn keys_outside_the_contract_are_refused_without_storage() {
    let db = db(TransactionIsolation::Serializable, ConflictResolution::Fail);
    exercise(&db, "memory");
    assert_eq!(committed(&db, vec![b'k'; MAX_KEY_LEN]), Some(2));
}

#[test]
fn keys_outside_the_contract_are_refused_on_every_store() {
    for adapter in adapters() {
        let dir = must(tempfile::tempdir(), "tempdir");
        {
            let db = must(adapter.open(dir.path()), "open");
            exercise(&db, adapter.name());
        }
        let db = must(adapter.open(dir.path()), "reopen");
        let mut t = db.start_transaction();
        let longest = ok(t.read(vec![b'k'; MAX_KEY_LEN]), "read the longest key");
        assert_eq!(longest.as_ref().map(value), Some(2), "{adapter:?}");
        assert_eq!(read(&mut t, &b"x"[..]), Some(3));
        assert_eq!(read(&mut t, "thread1"), Some(1));
        assert_eq!(read(&mut t, "fine"), Some(1));
    }
}
