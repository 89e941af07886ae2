//! Shared workload and engine code for Khonsu's benchmarks.
//!
//! The comparison driver (`src/bin/compare.rs`) runs the same workloads on
//! Khonsu and on the stores a user would otherwise pick, in one process,
//! engines interleaved:
//!
//! ```text
//! cargo run --release -p khonsu-benches --bin compare -- --quick --threads 1,2
//! ```
//!
//! * [`engines`]: the [`Engine`] trait and one implementation per store —
//!   Khonsu at each isolation level, skipdb's `OptimisticDb` and
//!   `SerializableDb`, rust-stm (one `TVar` per key), a `Mutex<BTreeMap>`,
//!   and the raw crossbeam `SkipMap` without transactions (the floor).
//! * [`workloads`]: `r1`, `w1`, `rmw1`, `ycsb-a`/`-b`/`-c`, `scan100`.
//! * [`runner`]: one measurement — threads started on a barrier, a fixed
//!   duration, per-thread CPU clocks, invariant checks.
//! * [`report`]: medians, ratios to Khonsu `Serializable`, the table and
//!   the JSON.
//! * [`hot_log`]: appends to one hot log key, `Transaction::append`
//!   against the read-modify-write log (a section of `compare`).
//! * [`durable`]: the durable-storage benchmark (`src/bin/durable.rs`):
//!   Khonsu on redb and fjall against raw redb, fjall, canopydb and an
//!   `fdatasync` loop, and recovery time, RSS and bytes on disk.
//! * [`Zipfian`], [`SplitMix64`], [`ValuePool`], [`Counter`]: key choosers
//!   and the values every engine holds.
//!
//! Run one measurement from code:
//!
//! ```
//! use std::time::Duration;
//! use khonsu_benches::{CellSpec, EngineKind, Setup, Workload, run_cell};
//!
//! let setup = Setup::new(1_000)?;
//! let engine = EngineKind::KhonsuSerializable.build(setup.keys, &setup.pool)?;
//! let cell = CellSpec {
//!     workload: Workload::Rmw1,
//!     threads: 2,
//!     duration: Duration::from_millis(10),
//!     seed: 1,
//! };
//! let measured = run_cell(engine.as_ref(), &setup, &cell)?; // checks the counter
//! assert!(measured.txns > 0);
//! # Ok::<(), khonsu_benches::Error>(())
//! ```

pub mod cpu;
pub mod durable;
pub mod engines;
mod error;
pub mod hot_log;
pub mod report;
pub mod rng;
pub mod runner;
pub mod values;
pub mod workloads;
pub mod zipf;

pub use engines::{Done, Engine, EngineKind};
pub use error::{Error, Result};
pub use rng::SplitMix64;
pub use runner::{CellSpec, Measurement, Setup, run_cell};
pub use values::{COUNTER_KEY, Counter, ValuePool};
pub use workloads::{Op, Workload};
pub use zipf::Zipfian;

impl Error {
    /// A command-line usage error carrying `message`.
    #[must_use]
    #[track_caller]
    pub fn usage(message: impl Into<String>) -> Self {
        error::UsageSnafu {
            message: message.into(),
        }
        .build()
    }

    /// A broken invariant of engine (or phase) `engine`.
    #[must_use]
    #[track_caller]
    pub fn invariant(engine: &'static str, message: impl Into<String>) -> Self {
        error::InvariantSnafu {
            engine,
            message: message.into(),
        }
        .build()
    }

    /// An I/O operation described by `what` failed with `error`.
    #[must_use]
    #[track_caller]
    pub fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        use snafu::IntoError;
        error::IoSnafu { what: what.into() }.into_error(error)
    }

    /// Writing a report to `path` failed with `error`.
    #[must_use]
    #[track_caller]
    pub fn write_report(path: impl Into<std::path::PathBuf>, error: std::io::Error) -> Self {
        use snafu::IntoError;
        error::WriteReportSnafu { path: path.into() }.into_error(error)
    }
}
