//! The data directory: opening the database a run asks for (memory, or an
//! embedded store in a directory), and reading a store back for
//! `khonsu inspect`.

use std::path::Path;
use std::sync::Arc;

use khonsu::prelude::*;
use khonsu::storage::Inspection;
use snafu::ResultExt;

use crate::config::{Adapter, StorageChoice, Workload};
use crate::error::{InspectSnafu, OpenSnafu, OpenStoreSnafu, Result};

/// Opens the database `storage` names with the isolation and resolution of
/// `workload`, recovering every committed key of a durable store. A data
/// directory is created if missing; a memory database creates nothing.
///
/// # Errors
/// [`Error::OpenStore`](crate::error::Error::OpenStore) when the store cannot be
/// opened (another process has the directory open, it is damaged, foreign, or
/// of another adapter: the cause names the path);
/// [`Error::Open`](crate::error::Error::Open) when recovery fails.
pub(crate) fn open(storage: &StorageChoice, workload: &Workload) -> Result<Khonsu> {
    let builder = Khonsu::builder()
        .isolation(workload.isolation.to_khonsu())
        .conflict_resolution(workload.resolution.to_khonsu());
    let builder = match storage {
        StorageChoice::Memory => builder,
        StorageChoice::Durable { adapter, dir } => builder.storage(open_adapter(*adapter, dir)?),
    };
    builder.build().context(OpenSnafu {
        store: storage.to_string(),
    })
}

/// Opens (or creates) the store of `adapter` in `dir`.
fn open_adapter(adapter: Adapter, dir: &Path) -> Result<Arc<dyn Storage>> {
    let opened: khonsu::storage::Result<Arc<dyn Storage>> = match adapter {
        Adapter::Redb => RedbStorage::open(dir).map(|s| Arc::new(s) as Arc<dyn Storage>),
        #[cfg(feature = "fjall")]
        Adapter::Fjall => FjallStorage::open(dir).map(|s| Arc::new(s) as Arc<dyn Storage>),
    };
    opened.context(OpenStoreSnafu {
        adapter: adapter.name(),
        dir,
    })
}

/// Opens the store in `dir` as the engine would (taking its lock), reads every
/// value back and reports what it holds. Never creates a store.
///
/// # Errors
/// [`Error::Inspect`](crate::error::Error::Inspect) when `dir` holds no store,
/// is open in another process, or cannot be read; damaged values are not an
/// error here but part of the [`Inspection`].
pub(crate) fn inspect(dir: &Path) -> Result<Inspection> {
    khonsu::storage::inspect(dir).context(InspectSnafu { dir })
}
