//! Khonsu core: keys, timestamps and the multi-version Transaction Buffer.
//!
//! This crate holds the mechanism every higher layer builds on, and no
//! policy: it does not decide which transaction wins a conflict (that is
//! `khonsu-concurrency`) and performs no I/O (that is `khonsu-storage`).
//!
//! * [`Key`] — an ordered, cheap-to-clone byte string.
//! * [`TimestampOracle`] — one monotonic clock; commit tickets publish in
//!   order so snapshots see whole commits only.
//! * [`SnapshotRegistry`] — the open snapshots, and from them the [`Pins`]:
//!   the points in time somebody may still read at.
//! * [`TxnBuffer`] — one lock-free `crossbeam_skiplist::SkipList` of keys, each with
//!   its write intent and a newest-first chain of committed versions;
//!   snapshot reads as one lookup, and precise reclamation of the versions
//!   no open snapshot reads (unlinked by the buffer, freed by `sdd`'s
//!   epoch-based collector).
//!
//! ```
//! use khonsu_core::{Key, SnapshotRegistry, TimestampOracle, TxnBuffer};
//!
//! let oracle = TimestampOracle::new(0);
//! let snapshots = SnapshotRegistry::new();
//! let buffer = TxnBuffer::new();
//!
//! // A commit: take the intent, get a timestamp, install, publish.
//! let key = Key::from("answer");
//! let intent = buffer.lock(&key, 0).unwrap();
//! let ticket = oracle.allocate().unwrap();
//! let ts = ticket.ts();
//! snapshots.with_recent_pins(&oracle, |pins| intent.install(ts, None, pins)).unwrap();
//! ticket.publish();
//!
//! let (snapshot, ts) = snapshots.register(&oracle, false);
//! assert_eq!(buffer.read_at(&key, ts).commit_ts, 1); // a tombstone, committed at 1
//! snapshots.release(snapshot);
//! ```

mod buffer;
mod error;
mod key;
mod key_builder;
mod key_range;
mod snapshots;
mod sync;
mod timestamp;
mod version;

pub use buffer::{BufferStats, Installed, IntentState, KeyIntent, Overwritten, TxnBuffer};
pub use error::{Error, Result};
pub use key::{INLINE_KEY_LEN, Key, MAX_KEY_LEN, ShortKey};
pub use key_builder::KeyBuilder;
pub use key_range::KeyRange;
pub use snapshots::{OldestSnapshot, Pins, RegisteredSnapshot, SnapshotRegistry};
pub use timestamp::{CommitTicket, MAX_TIMESTAMP, Timestamp, TimestampOracle};
pub use version::VersionedValue;
