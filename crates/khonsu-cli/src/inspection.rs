//! What `khonsu inspect DIR` prints: the [`Inspection`] of a store in plain
//! text, each damaged key's error, and the verdict.

use std::error::Error;
use std::fmt;

use khonsu::storage::Inspection;

use crate::report::format_bytes;

/// `error` and its causes on one line, joined by `: `.
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

/// An [`Inspection`] rendered for people.
pub(crate) struct InspectionReport<'a>(pub(crate) &'a Inspection);

impl InspectionReport<'_> {
    /// Whether every value decoded and the store agrees with its own records.
    pub(crate) fn healthy(&self) -> bool {
        self.0.is_healthy()
    }

    /// A one-line account of the damage, for stderr (`None` when healthy).
    pub(crate) fn damage_line(&self) -> Option<String> {
        let i = self.0;
        (!self.healthy()).then(|| {
            let plural =
                |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
            if i.is_damaged() {
                format!(
                    "the store in {} is damaged: {} damaged {} (listed above)",
                    i.dir.display(),
                    i.damaged,
                    plural(i.damaged, "entry", "entries")
                )
            } else {
                format!(
                    "the store in {} is not damaged, but {} intact {} cannot be decoded by this \
                     build (listed above)",
                    i.dir.display(),
                    i.undecodable,
                    plural(i.undecodable, "value", "values")
                )
            }
        })
    }

    /// Whether the files are damaged (exit 4), rather than holding intact
    /// values this build cannot decode (exit 5).
    pub(crate) fn damaged(&self) -> bool {
        self.0.is_damaged()
    }
}

impl fmt::Display for InspectionReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.0;
        writeln!(f, "khonsu inspect: {}", i.dir.display())?;
        writeln!(f, "adapter:          {}", i.adapter)?;
        writeln!(f, "keys:             {}", i.keys)?;
        writeln!(f, "rows:             {}", i.rows)?;
        writeln!(
            f,
            "value bytes:      {} (Arrow memory of the values once loaded)",
            format_bytes(i.value_bytes)
        )?;
        writeln!(f, "last commit ts:   {}", i.last_commit_ts)?;
        writeln!(f, "newest value ts:  {}", i.newest_value_ts)?;
        writeln!(
            f,
            "bytes on disk:    {} ({} bytes)",
            format_bytes(i.bytes_on_disk),
            i.bytes_on_disk
        )?;
        writeln!(
            f,
            "repaired:         {}",
            if i.repaired {
                "yes: the last process did not close the store cleanly, and opening repaired it"
            } else {
                "no"
            }
        )?;
        writeln!(f, "damaged:          {}", i.damaged)?;
        if i.undecodable > 0 {
            writeln!(
                f,
                "undecodable:      {} (intact bytes this build cannot decode)",
                i.undecodable
            )?;
        }
        for error in &i.damage {
            writeln!(f, "  - {}", one_line(error))?;
        }
        let unlisted = (i.damaged + i.undecodable).saturating_sub(i.damage.len() as u64);
        if unlisted > 0 {
            writeln!(
                f,
                "  ... and {unlisted} more (only the first {} are kept)",
                i.damage.len()
            )?;
        }
        if i.newest_value_ts > i.last_commit_ts {
            writeln!(
                f,
                "  - a value has commit timestamp {}, above the store's last commit \
                 timestamp {}",
                i.newest_value_ts, i.last_commit_ts
            )?;
        }
        if self.healthy() {
            writeln!(f, "result: ok (every value decodes)")
        } else if self.damaged() {
            writeln!(f, "result: DAMAGED")
        } else {
            writeln!(f, "result: UNDECODABLE (the files are intact)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_cause_chain_is_one_line() {
        let inner = std::io::Error::other("disk on fire");
        let outer = crate::error::Error::Spawn {
            error: inner,
            location: snafu::location!(),
        };
        assert_eq!(
            one_line(&outer),
            "failed to start a worker thread: disk on fire"
        );
    }

    #[test]
    fn a_healthy_store_renders_every_field() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = khonsu::Khonsu::open(dir.path()).unwrap();
            let batch = arrow_array::RecordBatch::try_from_iter([(
                "v",
                Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3])) as _,
            )])
            .unwrap();
            let mut t = db.start_transaction();
            t.write("a", batch.clone()).unwrap();
            t.write("b", batch).unwrap();
            t.commit().unwrap();
        }
        let inspection = khonsu::storage::inspect(dir.path()).unwrap();
        let report = InspectionReport(&inspection);
        assert!(report.healthy());
        assert_eq!(report.damage_line(), None);
        let text = report.to_string();
        for needle in [
            "adapter:          redb\n",
            "keys:             2\n",
            "rows:             6\n",
            "last commit ts:   1\n",
            "repaired:         no\n",
            "damaged:          0\n",
            "result: ok (every value decodes)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
