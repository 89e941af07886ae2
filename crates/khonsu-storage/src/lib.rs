//! Khonsu storage: how committed data is persisted and recovered.
//!
//! * [`Storage`] — the trait the commit pipeline calls with each commit's
//!   [`StorageMutation`]s, and the start-up [`Storage::recover`].
//! * [`MemoryStorage`] — the in-memory reference implementation.
//!
//! Durable adapters (redb, fjall) implement the same trait; see
//! `docs/commit-protocol.md` for where `apply` sits in a commit.

mod error;
mod memory;
mod traits;

pub use error::{Error, Result};
pub use memory::MemoryStorage;
pub use traits::{RecoveredEntry, RecoveredState, Storage, StorageMutation};
