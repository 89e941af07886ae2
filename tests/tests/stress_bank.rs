//! Bank stress test: concurrent transfers between accounts conserve the total, and concurrent
//! read-only auditors always see exactly the total (at `RepeatableRead` and Serializable with
//! point reads; at every level with one `scan_prefix`, since a single scan is atomic).
//!
//! Bounded by operation counts, seeded (`KHONSU_SEED`), threads released by a `Barrier`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use khonsu::prelude::*;
use khonsu_tests::*;

const ACCOUNTS: usize = 8;
const INITIAL: i64 = 100;
const TRANSFER_THREADS: usize = 3;
const TRANSFERS_PER_THREAD: usize = 3_000;
const AUDITS: usize = 1_500;

fn account(i: usize) -> Key {
    key(format!("acct/{i:02}"))
}

#[derive(Debug, Default)]
struct Counts {
    committed: AtomicU64,
    conflicts: AtomicU64,
    audits: AtomicU64,
}

/// One transfer: read both balances, move `amount` if the source can afford it.
fn transfer(db: &Khonsu, from: usize, to: usize, amount: i64) -> Result<bool, khonsu::Error> {
    let mut t = db.start_transaction();
    let a = t.read(account(from))?.map_or(0, |b| value(&b));
    let b = t.read(account(to))?.map_or(0, |b| value(&b));
    if a < amount {
        t.rollback();
        return Ok(false);
    }
    t.write(account(from), batch(a - amount))?;
    t.write(account(to), batch(b + amount))?;
    t.commit()?;
    Ok(true)
}

/// One audit: the total as seen by one transaction, by point reads (in a random order) or by
/// a single prefix scan. Also checks no balance is negative.
fn audit(db: &Khonsu, rng: &mut Rng, point_reads: bool) -> i64 {
    let mut t = db.start_transaction_with(TransactionOptions::new().read_only(true));
    let balances: Vec<i64> = if point_reads {
        let start = rng.index(ACCOUNTS);
        (0..ACCOUNTS)
            .map(|i| read_some(&mut t, account((start + i) % ACCOUNTS)))
            .collect()
    } else {
        let rows = scan_prefix(&mut t, "acct/");
        assert_eq!(rows.len(), ACCOUNTS, "every account is always present");
        rows.into_iter().map(|(_, v)| v).collect()
    };
    assert!(
        balances.iter().all(|b| *b >= 0),
        "negative balance: {balances:?}"
    );
    let info = ok(t.commit(), "read-only audit commit (must never abort)");
    assert!(info.read_only);
    balances.iter().sum()
}

fn run(test: &str, iso: TransactionIsolation, res: ConflictResolution, point_audits: bool) {
    let seed = seed(test);
    let db = db(iso, res);
    let entries: Vec<(Key, i64)> = (0..ACCOUNTS).map(|i| (account(i), INITIAL)).collect();
    seed_values(&db, &entries);
    let total = INITIAL * int(ACCOUNTS);
    let counts = Arc::new(Counts::default());
    let barrier = Arc::new(Barrier::new(TRANSFER_THREADS + 1));

    let mut handles = Vec::new();
    for th in 0..TRANSFER_THREADS {
        let (db, counts, barrier) = (db.clone(), Arc::clone(&counts), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(seed.wrapping_add(th as u64));
            barrier.wait();
            for _ in 0..TRANSFERS_PER_THREAD {
                let (from, to) = rng.two_distinct(ACCOUNTS);
                let amount = int(rng.index(30)) + 1;
                match transfer(&db, from, to, amount) {
                    Ok(true) => {
                        counts.committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) if e.is_conflict() => {
                        counts.conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => fail("transfer", e),
                }
            }
        }));
    }
    {
        let (db, counts, barrier) = (db.clone(), Arc::clone(&counts), Arc::clone(&barrier));
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xA0D1_7000);
            barrier.wait();
            for i in 0..AUDITS {
                // Alternate point-read audits with scan audits where both must be exact.
                let by_points = point_audits && i.is_multiple_of(2);
                let audited = audit(&db, &mut rng, by_points);
                assert_eq!(
                    audited, total,
                    "{iso:?}/{res:?}: audit {i} (points={by_points}) saw {audited}"
                );
                counts.audits.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    join_all(handles);

    let final_total: i64 = committed_all(&db).iter().map(|(_, v)| v).sum();
    assert_eq!(
        final_total, total,
        "{iso:?}/{res:?}: money created or destroyed"
    );
    let committed = counts.committed.load(Ordering::Relaxed);
    let conflicts = counts.conflicts.load(Ordering::Relaxed);
    assert!(committed > 0, "no transfer committed");
    assert_eq!(counts.audits.load(Ordering::Relaxed), AUDITS as u64);
    eprintln!("{test}: {committed} transfers committed, {conflicts} conflicts, {AUDITS} audits");
}

#[test]
fn bank_repeatable_read() {
    run(
        "bank_repeatable_read",
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Fail,
        true,
    );
}

#[test]
fn bank_serializable() {
    run(
        "bank_serializable",
        TransactionIsolation::Serializable,
        ConflictResolution::Fail,
        true,
    );
}

/// Transfers are read-modify-writes, so even `Replace` cannot lose money at `RepeatableRead`.
#[test]
fn bank_repeatable_read_with_replace_resolution() {
    run(
        "bank_repeatable_read_with_replace_resolution",
        TransactionIsolation::RepeatableRead,
        ConflictResolution::Replace,
        true,
    );
}

/// `ReadCommitted` with `Fail`: no lost updates, so the total is conserved; auditors use a single
/// scan (point reads at RC may legitimately see read skew).
#[test]
fn bank_read_committed_with_fail() {
    run(
        "bank_read_committed_with_fail",
        TransactionIsolation::ReadCommitted,
        ConflictResolution::Fail,
        false,
    );
}
