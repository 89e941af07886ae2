//! Errors of `khonsu-storage`.

use std::fmt::Write as _;
use std::path::PathBuf;

use snafu::{Location, Snafu};

/// A boxed error of a backend (redb, fjall, a user's adapter), kept as the
/// source of an [`Error`] so that no backend type appears in this crate's
/// public API.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a storage backend can report.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    /// The backend failed; `message` says how. Adapters and test doubles
    /// build it with [`Error::backend`].
    #[snafu(display("storage backend failed: {message}"))]
    Backend {
        /// What went wrong.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// An operation of the embedded database behind an adapter failed.
    #[snafu(display("{adapter} failed to {operation} {}", path.display()))]
    Adapter {
        /// The adapter (`redb`, `fjall`).
        adapter: &'static str,
        /// What it was doing.
        operation: &'static str,
        /// The file or directory it was working on.
        path: PathBuf,
        /// The backend's error.
        #[snafu(source)]
        error: BackendError,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A file-system operation failed.
    #[snafu(display("could not {operation} {}", path.display()))]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[snafu(source)]
        error: std::io::Error,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Another process (or another handle in this one) has the data
    /// directory open.
    #[snafu(display(
        "the data directory {} is already open in another process or handle \
         (its lock file {} is held); close that one first",
        dir.display(),
        lock.display()
    ))]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// The path does not hold a Khonsu store of the expected kind: a
    /// foreign file, another program's directory, or a store of another
    /// adapter. Nothing was changed.
    #[snafu(display("{} is not a Khonsu store that this adapter can open: {reason}", path.display()))]
    NotAStore {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// Stored data could not be decoded (damaged file, flipped bytes,
    /// truncated value).
    #[snafu(display("stored data in {} is corrupt at key {key}: {message}", path.display()))]
    Corrupt {
        /// The file (or store) holding the data.
        path: PathBuf,
        /// The key whose data is corrupt, shortened for display.
        key: String,
        /// What is wrong with it.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A stored value's bytes are intact (its checksums match) but cannot be
    /// decoded: written by a build that accepted a value it could not read
    /// back. Not damage: repairing the files would not help.
    #[snafu(display(
        "the value of key {key} in {} cannot be decoded, though its bytes are intact: {message}",
        path.display()
    ))]
    Undecodable {
        /// The file (or store) holding the value.
        path: PathBuf,
        /// The key, shortened for display.
        key: String,
        /// What the decoder said.
        message: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },

    /// A value cannot be stored: its batch cannot be encoded as Arrow IPC,
    /// or it is too large. Raised when the value is written, before commit.
    #[snafu(display("value cannot be stored: {reason}"))]
    Unencodable {
        /// Why.
        reason: String,
        /// Where the error was raised.
        #[snafu(implicit)]
        location: Location,
    },
}

impl Error {
    /// A backend failure with a message, for adapters outside this crate
    /// (and test doubles that inject faults).
    ///
    /// ```
    /// let err = khonsu_storage::Error::backend("disk full");
    /// assert!(err.to_string().contains("disk full"));
    /// ```
    #[must_use]
    #[track_caller]
    pub fn backend(message: impl Into<String>) -> Self {
        BackendSnafu {
            message: message.into(),
        }
        .build()
    }

    /// A corrupt value, for adapters outside this crate: `path` names the
    /// file, `key` the key (shortened for display), `message` the damage.
    #[must_use]
    #[track_caller]
    pub fn corrupt(path: impl Into<PathBuf>, key: &[u8], message: impl Into<String>) -> Self {
        CorruptSnafu {
            path: path.into(),
            key: display_key(key),
            message: message.into(),
        }
        .build()
    }

    /// Whether this error reports damaged or foreign data (as opposed to
    /// an I/O failure, a lock held elsewhere, or intact data this build
    /// cannot decode).
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::NotAStore { .. })
    }

    /// The error of a stored value of `key` in `path` that does not decode:
    /// [`Error::Corrupt`] when its bytes are damaged,
    /// [`Error::Undecodable`] when they are intact.
    #[must_use]
    #[track_caller]
    pub fn of_stored_value(
        path: impl Into<PathBuf>,
        key: &[u8],
        error: crate::codec::DecodeError,
    ) -> Self {
        let (path, key) = (path.into(), display_key(key));
        match error {
            crate::codec::DecodeError::Damaged(message) => {
                CorruptSnafu { path, key, message }.build()
            }
            crate::codec::DecodeError::Undecodable { commit_ts, message } => UndecodableSnafu {
                path,
                key,
                message: format!(
                    "its header and payload checksums match (committed at {commit_ts}), but \
                     Arrow IPC refuses the payload: {message}"
                ),
            }
            .build(),
        }
    }
}

/// A key as text for messages: printable ASCII as is, anything else in
/// hex, and at most [`DISPLAY_KEY_BYTES`] bytes of it.
///
/// ```
/// use khonsu_storage::display_key;
/// assert_eq!(display_key(b"acct/7"), "\"acct/7\"");
/// assert_eq!(display_key(&7_u64.to_be_bytes()), "0x0000000000000007");
/// assert!(display_key(&[b'a'; 200]).ends_with("...(200 bytes)"));
/// ```
#[must_use]
pub fn display_key(key: &[u8]) -> String {
    let shown = key.get(..DISPLAY_KEY_BYTES).unwrap_or(key);
    let mut out = if shown.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(shown))
    } else {
        let mut hex = String::with_capacity(2 + 2 * shown.len());
        hex.push_str("0x");
        for b in shown {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    if key.len() > shown.len() {
        let _ = write!(out, "...({} bytes)", key.len());
    }
    out
}

/// The most bytes of a key [`display_key`] shows.
pub const DISPLAY_KEY_BYTES: usize = 48;

/// Result alias of `khonsu-storage`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

thread_local! {
    /// How many [`guard`]s this thread is inside.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Where the last panic caught by a [`guard`] of this thread was raised.
    static CAUGHT_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once per process, a panic hook that stays silent about panics
/// raised inside a [`guard`] (it notes where they were raised, for the
/// error that reports them) and passes every other panic to the hook that
/// was installed before it. Without it, a panic the guard turns into an
/// error was reported twice: by the default hook on stderr (`thread 'main'
/// panicked at ...`), then as the error.
fn quiet_guarded_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let guarded = GUARDED.try_with(std::cell::Cell::get).unwrap_or(0) > 0;
            if guarded {
                let at = info.location().map(ToString::to_string);
                let _ = CAUGHT_AT.try_with(|caught| *caught.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic inside the embedded database (which redb and
/// fjall raise on some damaged files, where an error was due) into a
/// corruption error naming the file, reported once: as the error, not also
/// on stderr (see `quiet_guarded_panics`). A panic must not reach the
/// caller of a storage adapter.
pub(crate) fn guard<T>(
    file: &std::path::Path,
    what: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    quiet_guarded_panics();
    let _ = GUARDED.try_with(|depth| depth.set(depth.get() + 1));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let _ = GUARDED.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let at = CAUGHT_AT
            .try_with(|caught| caught.borrow_mut().take())
            .ok()
            .flatten()
            .map(|at| format!(" at {at}"))
            .unwrap_or_default();
        CorruptSnafu {
            path: file,
            key: "-".to_owned(),
            message: format!(
                "the embedded database panicked{at} while trying to {what} it: {message}"
            ),
        }
        .fail()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run by `a_caught_panic_is_reported_once_as_the_error` in a child process: a panic
    /// inside a guard, whose error goes to stdout.
    #[test]
    fn child_panics_inside_a_guard() {
        if std::env::var_os("KHONSU_GUARD_CHILD").is_none() {
            return; // only as the child
        }
        let result: Result<()> = guard(std::path::Path::new("/some/store"), "read", || {
            panic!("the embedded store gave up")
        });
        match result {
            Err(e) => println!("ERROR: {e}"),
            Ok(()) => println!("NO ERROR"),
        }
        // A panic outside any guard still goes to the hook installed before.
        let outside = std::panic::catch_unwind(|| panic!("outside a guard"));
        println!("OUTSIDE CAUGHT: {}", outside.is_err());
    }

    /// Issue 16, item 8: a panic that a guard turns into an error was also printed by the
    /// default panic hook (`thread 'main' panicked at ...`) before the error: reported twice,
    /// once as if the program had crashed. It is reported once, as the error, which says where
    /// the panic was raised; panics elsewhere are still printed.
    #[test]
    fn a_caught_panic_is_reported_once_as_the_error() {
        let Ok(exe) = std::env::current_exe() else {
            panic!("no path to the test binary");
        };
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "error::tests::child_panics_inside_a_guard",
                "--nocapture",
            ])
            .env("KHONSU_GUARD_CHILD", "1")
            .env("RUST_BACKTRACE", "0")
            .output();
        let Ok(out) = out else {
            panic!("could not run the child");
        };
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("ERROR: stored data in /some/store is corrupt")
                && stdout.contains("the embedded store gave up")
                && stdout.contains("panicked at ")
                && stdout.contains("error.rs"),
            "the error says what panicked and where: {stdout}"
        );
        assert!(
            !stderr.contains("the embedded store gave up"),
            "the caught panic was printed besides the error:\n{stderr}"
        );
        assert!(
            stderr.contains("outside a guard") && stdout.contains("OUTSIDE CAUGHT: true"),
            "a panic outside a guard reaches the previous hook:\n{stderr}"
        );
    }
}
