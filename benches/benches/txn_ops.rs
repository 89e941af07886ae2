//! Criterion micro-benchmarks of Khonsu's transaction operations, each beside
//! baselines doing the same work without transactions.
//!
//! Every group holds one operation at one size; inside it, `khonsu*` entries
//! run the operation in a Khonsu transaction and the baselines run the same
//! work on the raw data structures a user would otherwise pick:
//!
//! * `skipmap` — a bare `crossbeam_skiplist::SkipMap<u64, Arc<RecordBatch>>`
//!   (the structure Khonsu stores its versions in, with no transactions: the
//!   floor);
//! * `mutex_btreemap` — a `Mutex<BTreeMap<u64, Arc<RecordBatch>>>`, where
//!   holding the lock is the "transaction";
//! * for `append/*`: `arrow_utils_append` (`khonsu::arrow_utils::append`) and
//!   `arrow_concat_batches` (`arrow_select::concat::concat_batches`) on the
//!   same two batches, outside any transaction.
//!
//! | group | one iteration |
//! |---|---|
//! | `begin_commit_empty` | start a transaction and commit it, touching nothing |
//! | `read_hit` | a transaction that reads one present key |
//! | `read_miss` | a transaction that reads one absent key |
//! | `blind_write` | a transaction that writes one key without reading it |
//! | `read_modify_write` | a transaction that reads one key and writes it back |
//! | `scan/{10,100,1000}` | a transaction that scans that many consecutive keys |
//! | `append/{1_row,100_rows}` | a transaction that reads a 1,000-row batch, appends that many rows, writes the result |
//!
//! Every store is preloaded with 100,000 keys (the even numbers below
//! 200,000, so odd keys are misses that land between present keys) whose
//! value is one shared `Arc<RecordBatch>` built before timing. Keys are
//! drawn uniformly by a fixed hash of the iteration number, the same
//! sequence for every entry. Khonsu transactions use the default
//! (`Serializable`, `Fail`) unless the entry says `read_only`.
//!
//! Run them all (a few minutes on 2 cores), one group, or one entry:
//!
//! ```text
//! cargo bench -p khonsu-benches --bench txn_ops
//! cargo bench -p khonsu-benches --bench txn_ops -- read_hit
//! cargo bench -p khonsu-benches --bench txn_ops -- '^scan/100/'
//! ```
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use crossbeam_skiplist::SkipMap;
use khonsu::{Key, Khonsu, TransactionOptions};

/// Keys preloaded into every store.
const KEYS: u64 = 100_000;
/// Rows of the batch that `append/*` appends to.
const APPEND_BASE_ROWS: usize = 1_000;
/// Key holding the `append/*` base batch (outside the preloaded range).
const APPEND_BASE_KEY: u64 = u64::MAX - 1;
/// Key the `append/*` result is written to, so the base never grows.
const APPEND_OUT_KEY: u64 = u64::MAX;

/// The stores under test, all holding the same values.
struct Fixture {
    db: Khonsu,
    skipmap: SkipMap<u64, Arc<RecordBatch>>,
    btree: Mutex<BTreeMap<u64, Arc<RecordBatch>>>,
    /// The one value every preloaded key holds (a 1-row batch).
    value: Arc<RecordBatch>,
    schema: SchemaRef,
}

/// A `(id, value)` batch of `rows` rows starting at id `first`.
fn batch(schema: &SchemaRef, first: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..).take(rows).collect();
    #[expect(clippy::cast_precision_loss, reason = "synthetic values")]
    let values: Vec<f64> = ids.iter().map(|&i| i as f64 * 0.5).collect();
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .expect("valid batch")
}

impl Fixture {
    fn new() -> Self {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let value = Arc::new(batch(&schema, 0, 1));
        let db = Khonsu::builder().build().expect("build khonsu");
        let skipmap = SkipMap::new();
        let mut btree = BTreeMap::new();
        let keys: Vec<u64> = (0..KEYS).map(|i| i * 2).collect();
        for chunk in keys.chunks(1_000) {
            let mut t = db.start_transaction();
            for &k in chunk {
                t.write(k, Arc::clone(&value)).expect("preload write");
                skipmap.insert(k, Arc::clone(&value));
                btree.insert(k, Arc::clone(&value));
            }
            t.commit().expect("preload commit");
        }
        let base = Arc::new(batch(&schema, 0, APPEND_BASE_ROWS));
        let mut t = db.start_transaction();
        t.write(APPEND_BASE_KEY, Arc::clone(&base))
            .expect("preload base");
        t.commit().expect("preload base commit");
        skipmap.insert(APPEND_BASE_KEY, Arc::clone(&base));
        btree.insert(APPEND_BASE_KEY, base);
        Self {
            db,
            skipmap,
            btree: Mutex::new(btree),
            value,
            schema,
        }
    }

    fn read_only(&self) -> khonsu::Transaction {
        self.db
            .start_transaction_with(TransactionOptions::new().read_only(true))
    }
}

/// A deterministic, uniform-looking key sequence (splitmix64 of a counter).
struct Keys(u64);

impl Keys {
    fn new() -> Self {
        Self(0)
    }

    fn next_raw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A present key (even, below `2 * KEYS`).
    fn hit(&mut self) -> u64 {
        self.next_raw() % KEYS * 2
    }

    /// An absent key (odd, between two present keys).
    fn miss(&mut self) -> u64 {
        self.hit() + 1
    }

    /// The first of `n` consecutive present keys.
    fn scan_start(&mut self, n: u64) -> u64 {
        self.next_raw() % (KEYS - n) * 2
    }
}

fn begin_commit_empty(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture) {
    g.bench_function("khonsu", |b| {
        b.iter(|| black_box(fx.db.start_transaction().commit().expect("commit")));
    });
    g.bench_function("khonsu_read_only", |b| {
        b.iter(|| black_box(fx.read_only().commit().expect("commit")));
    });
    g.bench_function("mutex_btreemap", |b| {
        b.iter(|| drop(black_box(fx.btree.lock().unwrap())));
    });
}

fn read(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture, key: fn(&mut Keys) -> u64) {
    g.bench_function("khonsu", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let mut t = fx.db.start_transaction();
            let v = t.read(key(&mut keys).to_be_bytes()).expect("read");
            black_box(v);
            t.commit().expect("commit")
        });
    });
    g.bench_function("khonsu_read_only", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let mut t = fx.read_only();
            t.read(key(&mut keys).to_be_bytes()).expect("read")
        });
    });
    g.bench_function("skipmap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            fx.skipmap
                .get(&key(&mut keys))
                .map(|e| Arc::clone(e.value()))
        });
    });
    g.bench_function("mutex_btreemap", |b| {
        let mut keys = Keys::new();
        b.iter(|| fx.btree.lock().unwrap().get(&key(&mut keys)).cloned());
    });
}

fn blind_write(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture) {
    g.bench_function("khonsu", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let mut t = fx.db.start_transaction();
            t.write(keys.hit(), Arc::clone(&fx.value)).expect("write");
            t.commit().expect("commit")
        });
    });
    g.bench_function("skipmap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            fx.skipmap.insert(keys.hit(), Arc::clone(&fx.value));
        });
    });
    g.bench_function("mutex_btreemap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            fx.btree
                .lock()
                .unwrap()
                .insert(keys.hit(), Arc::clone(&fx.value))
        });
    });
}

fn read_modify_write(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture) {
    g.bench_function("khonsu", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let k = keys.hit();
            let mut t = fx.db.start_transaction();
            let v = t.read(k.to_be_bytes()).expect("read").expect("present");
            t.write(k, v).expect("write");
            t.commit().expect("commit")
        });
    });
    g.bench_function("skipmap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let k = keys.hit();
            let v = fx.skipmap.get(&k).map(|e| Arc::clone(e.value()));
            fx.skipmap.insert(k, v.expect("present"));
        });
    });
    g.bench_function("mutex_btreemap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let k = keys.hit();
            let mut map = fx.btree.lock().unwrap();
            let v = map.get(&k).cloned().expect("present");
            map.insert(k, v)
        });
    });
}

fn scan(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture, n: u64) {
    g.bench_function("khonsu", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let lo = keys.scan_start(n);
            let mut t = fx.db.start_transaction();
            let rows = t.scan(Key::from(lo)..Key::from(lo + 2 * n)).expect("scan");
            debug_assert_eq!(rows.len() as u64, n);
            black_box(rows);
            t.commit().expect("commit")
        });
    });
    g.bench_function("khonsu_read_only", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let lo = keys.scan_start(n);
            let mut t = fx.read_only();
            t.scan(Key::from(lo)..Key::from(lo + 2 * n)).expect("scan")
        });
    });
    g.bench_function("skipmap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let lo = keys.scan_start(n);
            fx.skipmap
                .range(lo..lo + 2 * n)
                .map(|e| (*e.key(), Arc::clone(e.value())))
                .collect::<Vec<_>>()
        });
    });
    g.bench_function("mutex_btreemap", |b| {
        let mut keys = Keys::new();
        b.iter(|| {
            let lo = keys.scan_start(n);
            fx.btree
                .lock()
                .unwrap()
                .range((Bound::Included(lo), Bound::Excluded(lo + 2 * n)))
                .map(|(k, v)| (*k, Arc::clone(v)))
                .collect::<Vec<_>>()
        });
    });
}

fn append(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture, rows: usize) {
    let extra = batch(&fx.schema, 1_000_000, rows);
    let base = fx
        .skipmap
        .get(&APPEND_BASE_KEY)
        .map(|e| Arc::clone(e.value()))
        .expect("base batch");
    g.bench_function("khonsu", |b| {
        b.iter(|| {
            let mut t = fx.db.start_transaction();
            let base = t
                .read(APPEND_BASE_KEY.to_be_bytes())
                .expect("read")
                .expect("base batch");
            let merged = khonsu::arrow_utils::append(&base, &extra).expect("append");
            t.write(APPEND_OUT_KEY, merged).expect("write");
            t.commit().expect("commit")
        });
    });
    g.bench_function("skipmap", |b| {
        b.iter(|| {
            let base = fx
                .skipmap
                .get(&APPEND_BASE_KEY)
                .map(|e| Arc::clone(e.value()))
                .expect("base batch");
            let merged = khonsu::arrow_utils::append(&base, &extra).expect("append");
            fx.skipmap.insert(APPEND_OUT_KEY, Arc::new(merged));
        });
    });
    g.bench_function("arrow_utils_append", |b| {
        b.iter(|| {
            khonsu::arrow_utils::append(black_box(&base), black_box(&extra)).expect("append")
        });
    });
    g.bench_function("arrow_concat_batches", |b| {
        b.iter(|| {
            arrow_select::concat::concat_batches(
                &fx.schema,
                [black_box(base.as_ref()), black_box(&extra)],
            )
            .expect("concat")
        });
    });
}

/// Runs `body` in a benchmark group called `name`.
fn group(c: &mut Criterion, name: &str, body: impl FnOnce(&mut BenchmarkGroup<'_, WallTime>)) {
    let mut g = c.benchmark_group(name);
    body(&mut g);
    g.finish();
}

fn main() {
    let fx = Fixture::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();

    group(&mut c, "begin_commit_empty", |g| begin_commit_empty(g, &fx));
    group(&mut c, "read_hit", |g| read(g, &fx, Keys::hit));
    group(&mut c, "read_miss", |g| read(g, &fx, Keys::miss));
    group(&mut c, "blind_write", |g| blind_write(g, &fx));
    group(&mut c, "read_modify_write", |g| read_modify_write(g, &fx));
    for n in [10, 100, 1_000] {
        group(&mut c, &format!("scan/{n}"), |g| scan(g, &fx, n));
    }
    group(&mut c, "append/1_row", |g| append(g, &fx, 1));
    group(&mut c, "append/100_rows", |g| append(g, &fx, 100));

    c.final_summary();
}
