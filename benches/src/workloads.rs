//! The comparison workloads and the operations a transaction is made of.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;

/// Keys every engine is loaded with (`0..DEFAULT_KEYS`).
pub const DEFAULT_KEYS: u64 = 100_000;

/// Operations per `ycsb-*` transaction.
pub const YCSB_OPS_PER_TXN: usize = 10;

/// Keys read by one `scan100` transaction.
pub const SCAN_LEN: u64 = 100;

/// The hot keys of the precision workloads (`skew`, `matcher`): `0..HOT_KEYS`.
pub const HOT_KEYS: u64 = 64;

/// One workload of the comparison: what every transaction does and how
/// keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Read-only transaction reading one uniformly chosen key.
    R1,
    /// Transaction blindly writing one uniformly chosen key.
    W1,
    /// Read-modify-write of one counter key (read `n`, write `n + 1`),
    /// retried until it commits; the counter must equal the commits.
    Rmw1,
    /// YCSB A: 10 operations, 50% reads and 50% updates, Zipfian keys.
    YcsbA,
    /// YCSB B: 10 operations, 95% reads and 5% updates, Zipfian keys.
    YcsbB,
    /// YCSB C: 10 reads, Zipfian keys (a read-only transaction).
    YcsbC,
    /// Read-only range scan of 100 consecutive keys from a uniform start.
    Scan100,
    /// Write skew's shape: read two distinct hot keys, write the first.
    /// Where `Serializable`'s precision shows: the second read is often
    /// overwritten, yet rarely in a cycle.
    Skew,
    /// An order book: half the transactions are makers (a blind write of a
    /// hot price level), half matchers (scan every level for the best
    /// price, write a fill under a key of their own).
    Matcher,
}

impl Workload {
    /// Every workload, in the order the driver runs them.
    pub const ALL: [Self; 9] = [
        Self::R1,
        Self::W1,
        Self::Rmw1,
        Self::YcsbA,
        Self::YcsbB,
        Self::YcsbC,
        Self::Scan100,
        Self::Skew,
        Self::Matcher,
    ];

    /// The workload's name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::R1 => "r1",
            Self::W1 => "w1",
            Self::Rmw1 => "rmw1",
            Self::YcsbA => "ycsb-a",
            Self::YcsbB => "ycsb-b",
            Self::YcsbC => "ycsb-c",
            Self::Scan100 => "scan100",
            Self::Skew => "skew",
            Self::Matcher => "matcher",
        }
    }

    /// The workload called `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// One line saying what a transaction of this workload does.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::R1 => "read-only txn, 1 read, uniform key",
            Self::W1 => "1 blind write, uniform key",
            Self::Rmw1 => "read counter key 0, write n+1; retried until commit; checked",
            Self::YcsbA => "10 ops, 50% read / 50% update, zipfian 0.99",
            Self::YcsbB => "10 ops, 95% read / 5% update, zipfian 0.99",
            Self::YcsbC => "10 reads (read-only txn), zipfian 0.99",
            Self::Scan100 => "read-only txn, scan of 100 consecutive keys, uniform start",
            Self::Skew => "read 2 of 64 hot keys, write the first (Khonsu only)",
            Self::Matcher => {
                "50% write 1 of 64 levels / 50% scan 64 levels + write a fill (Khonsu only)"
            }
        }
    }

    /// For the YCSB workloads, the probability that an operation is a read.
    #[must_use]
    pub fn ycsb_read_fraction(self) -> Option<f64> {
        match self {
            Self::YcsbA => Some(0.5),
            Self::YcsbB => Some(0.95),
            Self::YcsbC => Some(1.0),
            Self::R1 | Self::W1 | Self::Rmw1 | Self::Scan100 | Self::Skew | Self::Matcher => None,
        }
    }
}

impl Workload {
    /// Whether only Khonsu's engines run it (the precision workloads compare
    /// Khonsu's validations with each other).
    #[must_use]
    pub fn khonsu_only(self) -> bool {
        matches!(self, Self::Skew | Self::Matcher)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation of a multi-operation (YCSB) transaction.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// Read the key.
    Read(u64),
    /// Overwrite the key with the batch.
    Update(u64, &'a Arc<RecordBatch>),
}

impl Op<'_> {
    /// The key the operation touches.
    #[must_use]
    pub fn key(&self) -> u64 {
        match *self {
            Op::Read(key) | Op::Update(key, _) => key,
        }
    }

    /// Whether the operation is a read.
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read(_))
    }
}

/// Whether a transaction made of `ops` only reads (engines then use their
/// read-only transaction).
#[must_use]
pub fn is_read_only(ops: &[Op<'_>]) -> bool {
    ops.iter().all(Op::is_read)
}

/// Reads among `ops`: the rows a transaction over loaded keys must see.
#[must_use]
pub fn reads_in(ops: &[Op<'_>]) -> u64 {
    ops.iter().filter(|op| op.is_read()).fold(0, |n, _| n + 1)
}

#[cfg(test)]
mod tests {
    use super::Workload;

    #[test]
    fn names_round_trip() {
        for workload in Workload::ALL {
            assert_eq!(Workload::parse(workload.name()), Some(workload));
        }
        assert_eq!(Workload::parse("nope"), None);
    }
}
