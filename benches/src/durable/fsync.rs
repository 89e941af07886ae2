//! The physical floor of one durable commit: append a value's bytes to a
//! file and `fdatasync` it (`File::sync_data`), in a loop.
//!
//! Two layouts:
//!
//! * **shared file**: every thread appends to one file (opened in append
//!   mode) and syncs it. The kernel may let one `fdatasync` cover appends
//!   of several threads, so this is what a write-ahead log with ideal
//!   group commit can reach.
//! * **own file**: each thread appends to a file of its own and syncs it:
//!   independent syncs, which the device may or may not overlap.
//!
//! Appending grows the file, so each sync also commits the new size to the
//! file system's journal, like the logs of fjall and canopydb (redb
//! instead rewrites pages of a file it grew earlier).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use snafu::ResultExt;

use crate::error::{IoSnafu, Result, WorkerPanickedSnafu};
use crate::runner::Measurement;

/// Where the threads of [`run_fsync_cell`] append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsyncLayout {
    /// One file for every thread.
    Shared,
    /// One file per thread.
    Own,
}

impl FsyncLayout {
    /// Both, in report order.
    pub const ALL: [Self; 2] = [Self::Shared, Self::Own];

    /// The layout's engine name in tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "fdatasync-shared",
            Self::Own => "fdatasync-own",
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .context(IoSnafu {
            what: format!("opening {} for appending", path.display()),
        })
}

/// `threads` threads appending `bytes` bytes and syncing, for `duration`,
/// in files under `dir` (removed afterwards). `txns` in the result counts
/// syncs.
///
/// # Errors
/// I/O failures, or a panicking thread.
pub fn run_fsync_cell(
    dir: &Path,
    layout: FsyncLayout,
    threads: usize,
    bytes: usize,
    duration: Duration,
) -> Result<Measurement> {
    let threads = threads.max(1);
    let paths: Vec<PathBuf> = match layout {
        FsyncLayout::Shared => vec![dir.join("fsync-shared.log")],
        FsyncLayout::Own => (0..threads)
            .map(|i| dir.join(format!("fsync-own-{i}.log")))
            .collect(),
    };
    let files = paths
        .iter()
        .map(|path| open_append(path))
        .collect::<Result<Vec<File>>>()?;
    let payload = vec![0xA5_u8; bytes];
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(u64, Duration)>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let file = files.get(i % files.len().max(1));
                let (barrier, stop, payload) = (&barrier, &stop, &payload);
                scope.spawn(move || -> Result<(u64, Duration)> {
                    let Some(mut file) = file else {
                        return Ok((0, Duration::ZERO));
                    };
                    barrier.wait();
                    let start = Instant::now();
                    let mut syncs = 0;
                    while !stop.load(Ordering::Relaxed) {
                        file.write_all(payload).context(IoSnafu {
                            what: "appending to the fdatasync file".to_owned(),
                        })?;
                        file.sync_data().context(IoSnafu {
                            what: "fdatasync".to_owned(),
                        })?;
                        syncs += 1;
                    }
                    Ok((syncs, start.elapsed()))
                })
            })
            .collect();
        barrier.wait();
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    WorkerPanickedSnafu {
                        engine: layout.name(),
                        workload: "fdatasync",
                    }
                    .fail()
                })
            })
            .collect()
    });
    drop(files);
    for path in &paths {
        std::fs::remove_file(path).context(IoSnafu {
            what: format!("removing {}", path.display()),
        })?;
    }
    let mut total = Measurement::default();
    for result in results {
        let (syncs, wall) = result?;
        total.txns += syncs;
        total.wall = total.wall.max(wall);
    }
    Ok(total)
}
