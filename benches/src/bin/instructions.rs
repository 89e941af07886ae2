//! A measured loop for counting instructions per transaction with
//! callgrind, which is deterministic where wall-clock timings on a shared
//! machine are not:
//!
//! ```text
//! cargo build --release -p khonsu-benches --bin instructions
//! valgrind --tool=callgrind --toggle-collect='instructions::measured*' \
//!     target/release/instructions w1 200000
//! ```
//!
//! then divide the collected total by the transaction count. It loads
//! 100,000 one-row keys (a shared `Arc` per value, as `compare` does) and
//! runs one workload on one thread at `Serializable`: `r1` (one read,
//! read-only), `w1` (one blind write), `rmw1` (read and rewrite one hot
//! key), `ten` (5 reads and 5 writes on uniform keys), `skew` (read two of
//! 64 hot keys, write the first); `VALIDATION=conservative` for the
//! conservative `Serializable`. Without valgrind it
//! prints the wall time per transaction, for a rough look.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch};
use khonsu::SerializableValidation;
use khonsu::prelude::*;

const KEYS: u64 = 100_000;

/// A small deterministic generator (xorshift64*), so that every run and
/// every build measures the same keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn value(n: i64) -> Arc<RecordBatch> {
    let column = Arc::new(Int64Array::from(vec![n]));
    match RecordBatch::try_from_iter([("v", column as _)]) {
        Ok(batch) => Arc::new(batch),
        Err(e) => panic!("a one-column batch: {e}"),
    }
}

/// The pool's batch at `index` modulo its length.
fn of(pool: &[Arc<RecordBatch>], index: u64) -> Arc<RecordBatch> {
    let at = usize::try_from(index % pool.len().max(1) as u64).unwrap_or(0);
    pool.get(at).map_or_else(|| value(0), Arc::clone)
}

#[inline(never)]
fn measured(db: &Khonsu, workload: &str, n: u64, pool: &[Arc<RecordBatch>]) -> Result<u64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = 0_u64;
    let pick = |rng: &mut Rng| of(pool, rng.below(pool.len() as u64));
    for _ in 0..n {
        match workload {
            "r1" => {
                let mut t = db.start_transaction_with(TransactionOptions::new().read_only(true));
                rows += t.read(rng.below(KEYS))?.map_or(0, |b| b.num_rows() as u64);
                t.commit()?;
            }
            "w1" => {
                let mut t = db.start_transaction();
                t.write(rng.below(KEYS), pick(&mut rng))?;
                t.commit()?;
            }
            "w1a" => {
                let key = rng.below(KEYS);
                let value = pick(&mut rng);
                db.atomically(|t| t.write(key, Arc::clone(&value)))?;
            }
            "rmw1" => {
                let mut t = db.start_transaction();
                let seen = t.read(0_u64)?;
                rows += seen.map_or(0, |b| b.num_rows() as u64);
                t.write(0_u64, pick(&mut rng))?;
                t.commit()?;
            }
            "skew" => {
                let mut t = db.start_transaction();
                let write = rng.below(64);
                let read = (write + 1 + rng.below(63)) % 64;
                rows += t.read(write)?.map_or(0, |b| b.num_rows() as u64);
                rows += t.read(read)?.map_or(0, |b| b.num_rows() as u64);
                t.write(write, pick(&mut rng))?;
                t.commit()?;
            }
            "ten" => {
                let mut t = db.start_transaction();
                for _ in 0..5 {
                    rows += t.read(rng.below(KEYS))?.map_or(0, |b| b.num_rows() as u64);
                    t.write(rng.below(KEYS), pick(&mut rng))?;
                }
                t.commit()?;
            }
            other => return Err(Error::abort(format!("unknown workload {other}"))),
        }
    }
    Ok(black_box(rows))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "w1".to_owned());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let pool_size: i64 = std::env::var("POOL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let pool: Vec<Arc<RecordBatch>> = (0..pool_size).map(value).collect();
    // `VALIDATION=conservative` measures `Serializable`'s conservative validation.
    let validation = match std::env::var("VALIDATION").as_deref() {
        Ok("conservative") => SerializableValidation::Conservative,
        _ => SerializableValidation::Precise,
    };
    let db = Khonsu::builder()
        .serializable_validation(validation)
        .build()?;
    for chunk in 0..KEYS / 1_000 {
        let mut t = db.start_transaction();
        for key in chunk * 1_000..(chunk + 1) * 1_000 {
            t.write(key, of(&pool, key))?;
        }
        t.commit()?;
    }
    if let Some((base, threads)) = workload.split_once('x') {
        let threads: u64 = threads.parse().unwrap_or(2);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| measured(&db, base, n, &pool));
            }
        });
        let per = start.elapsed().as_nanos() / u128::from((n * threads).max(1));
        println!("{workload}: {per} ns per txn; {:?}", db.stats());
        return Ok(());
    }
    let start = Instant::now();
    let rows = measured(&db, &workload, n, &pool)?;
    let per = start.elapsed().as_nanos() / u128::from(n.max(1));
    println!("{workload}: {n} transactions, {per} ns each (wall), {rows} rows read");
    let stats = db.stats();
    println!(
        "tracked: {} readers, {} pivots",
        stats.serializable_readers, stats.serializable_pivots
    );
    Ok(())
}
