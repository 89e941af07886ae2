//! The two policy knobs: [`TransactionIsolation`] and [`ConflictResolution`].

use std::fmt;
use std::str::FromStr;

/// How much of other transactions' concurrent work a transaction may observe.
///
/// | level | reads see | prevents | allowed |
/// |---|---|---|---|
/// | `ReadCommitted` | latest committed value at each read | G0, G1a, G1b, G1c | non-repeatable read, lost update unless `Fail`, read skew, write skew |
/// | `RepeatableRead` | the snapshot at start; own writes | + OTV, PMP, P4, G-single | write skew (G2-item, G2) |
/// | `Serializable` | the snapshot at start; own writes | every cycle, phantoms through scans, the read-only anomaly | nothing |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransactionIsolation {
    /// Each read sees the latest committed state.
    ReadCommitted,
    /// Snapshot isolation: reads see the snapshot taken at start; first
    /// committer wins on read-modify-writes.
    RepeatableRead,
    /// Snapshot reads plus validation of every read and scanned range: the
    /// outcome equals some serial execution.
    #[default]
    Serializable,
}

/// What to do when a key this transaction wrote *without reading it* (a
/// blind write) was also written by a transaction that committed after this
/// one's snapshot.
///
/// A key that was read and then written is a read-modify-write; at
/// `RepeatableRead` and `Serializable` a concurrent committed write to it
/// always aborts, whatever this setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictResolution {
    /// Append this transaction's rows to the concurrently committed batch
    /// (schemas must be equal). A delete under `Append` fails like `Fail`.
    Append,
    /// Drop this transaction's write of the key and commit the rest.
    Ignore,
    /// Install this transaction's write over the concurrent one.
    Replace,
    /// Abort the transaction with a write-write conflict.
    #[default]
    Fail,
}

/// Error for parsing an isolation level or a conflict resolution by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOptionError {
    what: &'static str,
    input: String,
}

impl fmt::Display for ParseOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.input)
    }
}

impl std::error::Error for ParseOptionError {}

impl ParseOptionError {
    pub(crate) fn new(what: &'static str, input: &str) -> Self {
        Self {
            what,
            input: input.to_owned(),
        }
    }
}

impl TransactionIsolation {
    /// All levels, weakest first.
    pub const ALL: [Self; 3] = [
        Self::ReadCommitted,
        Self::RepeatableRead,
        Self::Serializable,
    ];

    /// The kebab-case name (`read-committed`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadCommitted => "read-committed",
            Self::RepeatableRead => "repeatable-read",
            Self::Serializable => "serializable",
        }
    }

    /// Whether reads come from the start snapshot (not the latest state).
    #[must_use]
    pub fn reads_snapshot(self) -> bool {
        !matches!(self, Self::ReadCommitted)
    }
}

impl ConflictResolution {
    /// All strategies.
    pub const ALL: [Self; 4] = [Self::Append, Self::Ignore, Self::Replace, Self::Fail];

    /// The lowercase name (`append`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Ignore => "ignore",
            Self::Replace => "replace",
            Self::Fail => "fail",
        }
    }
}

impl fmt::Display for TransactionIsolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ConflictResolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransactionIsolation {
    type Err = ParseOptionError;

    /// Parses `read-committed`, `repeatable-read`, `serializable` (also with
    /// `_` or no separator, any case; `snapshot` means `repeatable-read`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        match norm.as_str() {
            "readcommitted" | "rc" => Ok(Self::ReadCommitted),
            "repeatableread" | "rr" | "snapshot" | "si" => Ok(Self::RepeatableRead),
            "serializable" | "ser" => Ok(Self::Serializable),
            _ => Err(ParseOptionError {
                what: "isolation level",
                input: s.to_owned(),
            }),
        }
    }
}

impl FromStr for ConflictResolution {
    type Err = ParseOptionError;

    /// Parses `append`, `ignore`, `replace`, `fail` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(Self::Append),
            "ignore" => Ok(Self::Ignore),
            "replace" => Ok(Self::Replace),
            "fail" => Ok(Self::Fail),
            _ => Err(ParseOptionError {
                what: "conflict resolution",
                input: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for level in TransactionIsolation::ALL {
            assert_eq!(level.name().parse::<TransactionIsolation>(), Ok(level));
        }
        for r in ConflictResolution::ALL {
            assert_eq!(r.to_string().parse::<ConflictResolution>(), Ok(r));
        }
        assert!("sometimes".parse::<TransactionIsolation>().is_err());
        assert_eq!(
            TransactionIsolation::default(),
            TransactionIsolation::Serializable
        );
        assert_eq!(ConflictResolution::default(), ConflictResolution::Fail);
    }
}
