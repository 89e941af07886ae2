//! A feature store: per-user feature rows upserted by feature name, ranged
//! scans over users, and a training snapshot read at a pinned timestamp —
//! the other program a user writes first on Khonsu.
//!
//! Writer threads upsert features (`arrow_utils::upsert_by_key` on the
//! `feature` column) of random users; a reader scans ranges of users while
//! they do. A training job pins a snapshot, more updates land, and the job
//! still reads exactly the pinned state. The run checks that every user
//! holds each feature once and prints the metrics.
//!
//! ```text
//! cargo run --release -p khonsu --example feature_store -- [--users N] [--updates N]
//! ```

use std::sync::Arc;

use khonsu::arrow::schema::{DataType, Field, Schema, SchemaRef};
use khonsu::arrow_utils::{self, RowBuilder};
use khonsu::prelude::*;

const FEATURES: [&str; 5] = ["clicks_7d", "spend_30d", "sessions_1d", "ltv", "churn_risk"];

fn user_key(user: u64) -> Key {
    Key::builder().str("features").u64(user).build()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("version", DataType::UInt64, false),
    ]))
}

/// One user's feature `name` set to `value`, inserted or replaced by name.
fn upsert(
    t: &mut Transaction,
    schema: &SchemaRef,
    user: u64,
    name: &str,
    value: f64,
    version: u64,
) -> Result<()> {
    let row = RowBuilder::new(schema)
        .set("feature", name)?
        .set("value", value)?
        .set("version", version)?
        .build()?;
    let features = match t.read(user_key(user))? {
        Some(old) => arrow_utils::upsert_by_key(&old, &row, "feature")?,
        None => row,
    };
    t.write(user_key(user), features)
}

/// Feature `name` of a user's batch.
fn feature(batch: &RecordBatch, name: &str) -> Result<Option<f64>> {
    Ok(match arrow_utils::find_row(batch, "feature", name)? {
        Some(row) => Some(arrow_utils::value::<f64>(batch, "value", row)?),
        None => None,
    })
}

/// A training job pins its snapshot; later updates do not move it.
fn training_snapshot(
    db: &Khonsu,
    schema: &SchemaRef,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let training = db.pin_snapshot();
    let mut before = db.start_transaction_at(training.ts())?;
    let ltv_of =
        |t: &mut Transaction| -> std::result::Result<Option<f64>, Box<dyn std::error::Error>> {
            let batch = t.read(user_key(7))?.ok_or("user 7 is missing")?;
            Ok(feature(&batch, "ltv")?)
        };
    let ltv_then = ltv_of(&mut before)?;
    db.atomically(|t| upsert(t, schema, 7, "ltv", 1e6, u64::MAX))?;
    let mut job = training.start_transaction();
    let ltv_job = ltv_of(&mut job)?;
    let mut now = db.start_transaction();
    let ltv_now = ltv_of(&mut now)?;
    println!("user 7 ltv: pinned {ltv_then:?}, training job {ltv_job:?}, now {ltv_now:?}");
    if ltv_job != ltv_then || ltv_now != Some(1e6) {
        return Err("the pinned snapshot moved".into());
    }

    Ok(())
}

fn arg(name: &str, default: u64) -> std::result::Result<u64, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let users = arg("--users", 1_000)?.max(10);
    let updates = arg("--updates", 4_000)?;
    let db = Khonsu::builder().build()?;
    let schema = schema();
    println!(
        "feature store: {users} users x {} features, {updates} updates on 2 threads",
        FEATURES.len()
    );

    // Every user starts with every feature at 0.
    db.atomically(|t| {
        for user in 0..users {
            for name in FEATURES {
                upsert(t, &schema, user, name, 0.0, 0)?;
            }
        }
        Ok(())
    })?;

    // Writers update random features; a reader scans a range of users meanwhile.
    std::thread::scope(|s| -> Result<()> {
        let writers: Vec<_> = (0..2_u64)
            .map(|w| {
                let (db, schema) = (&db, &schema);
                s.spawn(move || -> Result<()> {
                    let mut x = (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    for i in 0..updates / 2 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let (user, name) = (
                            x % users,
                            FEATURES
                                .get(usize::try_from(x % 5).unwrap_or(0))
                                .copied()
                                .unwrap_or("ltv"),
                        );
                        #[expect(clippy::cast_precision_loss, reason = "a demo value")]
                        let value = (i % 100) as f64;
                        db.atomically(|t| upsert(t, schema, user, name, value, i + 1))?;
                    }
                    Ok(())
                })
            })
            .collect();
        let reader = s.spawn(|| -> Result<usize> {
            let mut scanned = 0;
            for round in 0..20 {
                let lo = round * (users / 20);
                let mut t = db.start_transaction_with(TransactionOptions::new().read_only(true));
                for (_, batch) in t.scan(user_key(lo)..user_key(lo + 10))? {
                    // Each user's batch is whole: every feature exactly once.
                    if batch.num_rows() != FEATURES.len() {
                        return Err(Error::abort(format!(
                            "a user has {} feature rows",
                            batch.num_rows()
                        )));
                    }
                    scanned += 1;
                }
            }
            Ok(scanned)
        });
        for writer in writers {
            writer
                .join()
                .map_err(|_| Error::abort("a writer panicked"))??;
        }
        let scanned = reader
            .join()
            .map_err(|_| Error::abort("the reader panicked"))??;
        println!("concurrent reader scanned {scanned} users, every one whole");
        Ok(())
    })?;

    training_snapshot(&db, &schema)?;

    let mut now = db.start_transaction();
    // The first users, streamed lazily; the last three keys, newest first.
    let first: Vec<Key> = now
        .scan_iter(user_key(0)..user_key(users))
        .limit(3)
        .keys()
        .collect::<Result<_>>()?;
    let last: Vec<Key> = now
        .scan_iter(user_key(0)..user_key(users))
        .reverse()
        .limit(3)
        .keys()
        .collect::<Result<_>>()?;
    let shown = |keys: &[Key]| {
        keys.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "first users {}\nlast users  {}",
        shown(&first),
        shown(&last)
    );
    let all = now.scan_prefix(Key::builder().str("features"))?;
    if u64::try_from(all.len())? != users {
        return Err(format!("{} users of {users}", all.len()).into());
    }
    println!("metrics: {}", db.metrics());
    Ok(())
}
