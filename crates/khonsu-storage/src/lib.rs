//! Khonsu storage: how committed data is persisted and recovered.
//!
//! * [`Storage`] — the trait the commit pipeline calls with each group of
//!   commits ([`WriteGroup`] of [`CommitRecord`]s), and the start-up
//!   [`Storage::recover`].
//! * [`RedbStorage`] — the embedded default, on redb: one file in a data
//!   directory, one redb write transaction with `Durability::Immediate`
//!   per group.
//! * `FjallStorage` (cargo feature `fjall`) — on fjall's LSM-tree, one
//!   write batch with `PersistMode::SyncAll` per group.
//! * [`MemoryStorage`] — the in-memory test double (not durable).
//! * [`codec`] — the value encoding every adapter stores: a checksummed
//!   header with the commit timestamp, then the batch as an Arrow IPC stream.
//! * [`inspect()`] — what a data directory holds, with every value verified.
//! * [`conformance`] — checks an adapter author runs against their own
//!   `Storage`.
//!
//! # What is durable when `commit` returns
//!
//! With a durable adapter, a transaction's `commit` returns `Ok` only after
//! the storage write that carries it has returned, and a durable adapter
//! returns only after its data is synced to stable storage: the commit
//! survives a crash of the process or of the machine. Nothing of a commit
//! is visible to other transactions before that. Several concurrent commits
//! share one write and one sync (group commit, in `khonsu-txn`); a group is
//! atomic, so recovery finds every transaction whole or not at all.
//!
//! # What the trait is not
//!
//! It holds no transaction logic — conflict detection, isolation levels and
//! timestamps are the engine's — and no backend types: an adapter maps
//! [`WriteGroup`]s onto its database and reports failures as this crate's
//! [`Error`] inside a [`WriteFailure`] that says whether anything may have
//! been written. The whole data set lives in memory; the storage is its
//! durable copy, read only by [`Storage::recover`].
//!
//! # On disk
//!
//! A data directory holds a manifest naming the adapter, a lock file held
//! while the store is open (a second open, in this process or another, is
//! refused with [`Error::Locked`]), and the adapter's files. See [`dir`] and
//! `docs/storage.md`.

pub mod codec;
pub mod conformance;
pub mod dir;
mod error;
#[cfg(feature = "fjall")]
mod fjall_adapter;
#[cfg(feature = "fjall")]
mod fjall_files;
mod inspect;
mod memory;
mod redb_adapter;
mod traits;

pub use error::{BackendError, DISPLAY_KEY_BYTES, Error, Result, display_key};
#[cfg(feature = "fjall")]
pub use fjall_adapter::{FjallOptions, FjallStorage};
pub use inspect::{Inspection, KEPT_DAMAGE, inspect};
pub use memory::MemoryStorage;
pub use redb_adapter::{RedbOptions, RedbStorage};
pub use traits::{
    CommitRecord, RecoveredEntry, RecoveredState, Scanned, Storage, StorageMutation, StorageStats,
    WriteFailure, WriteGroup,
};

/// The adapters this build can open, by the name their manifests carry.
#[must_use]
pub fn adapters() -> &'static [&'static str] {
    if cfg!(feature = "fjall") {
        &["redb", "fjall"]
    } else {
        &["redb"]
    }
}

/// The key contract every store keeps: a stored key is 1 to
/// [`MAX_KEY_LEN`](khonsu_core::MAX_KEY_LEN) (65,535) bytes. fjall cannot
/// hold an empty key or a longer one, and the other adapters refuse them
/// too, so that a program that works on one store works on all of them.
///
/// ```
/// assert!(khonsu_storage::check_key(b"acct/7").is_ok());
/// assert!(khonsu_storage::check_key(b"").is_err());
/// assert!(khonsu_storage::check_key(&vec![0_u8; 65_536]).is_err());
/// ```
///
/// # Errors
/// [`Error::Unencodable`] naming the key and its length.
pub fn check_key(key: &[u8]) -> Result<()> {
    snafu::ensure!(
        (1..=khonsu_core::MAX_KEY_LEN).contains(&key.len()),
        error::UnencodableSnafu {
            reason: format!(
                "key {} is {} bytes; stores hold keys of 1 to {} bytes",
                display_key(key),
                key.len(),
                khonsu_core::MAX_KEY_LEN
            ),
        }
    );
    Ok(())
}
