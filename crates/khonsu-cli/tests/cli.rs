//! Runs the built `khonsu` binary: a short demo must conserve the total and exit 0,
//! a second run on a data directory must resume the first run's bank, `inspect`
//! must tell a healthy store from a damaged one and from no store, a busy data
//! directory must be refused with its name, help must list every flag, and bad
//! flags must be usage errors, not panics.
//!
//! Every command runs in a fresh temporary working directory, so no test writes
//! `./khonsu-data` (the default data directory) into the source tree.

use std::path::{Path, PathBuf};

use arrow_array::{Int64Array, RecordBatch};
use khonsu::Khonsu;
use support::{Background, Sandbox, balances, recorded_runs, wait_for_file};

/// Helpers, in a `cfg(test)` module so that they may unwrap like the tests do.
#[cfg(test)]
mod support {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use arrow_array::{Int64Array, RecordBatch, UInt64Array};
    use khonsu::{Key, Khonsu};

    /// How long a test waits for a background demo to reach a state.
    pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

    /// A temporary working directory for the binary.
    pub(crate) struct Sandbox {
        pub(crate) dir: tempfile::TempDir,
    }

    impl Sandbox {
        pub(crate) fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        pub(crate) fn path(&self) -> &Path {
            self.dir.path()
        }

        /// `name` inside the sandbox, as a string for the command line.
        pub(crate) fn join(&self, name: &str) -> String {
            self.path().join(name).to_string_lossy().into_owned()
        }

        pub(crate) fn command(&self, args: &[&str]) -> Command {
            let mut command = Command::new(env!("CARGO_BIN_EXE_khonsu"));
            command.args(args).current_dir(self.path());
            command
        }

        pub(crate) fn run(&self, args: &[&str]) -> Run {
            let output: Output = self
                .command(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run the khonsu binary: {e}"));
            Run {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }

        /// Names of the entries of the sandbox.
        pub(crate) fn entries(&self) -> Vec<String> {
            std::fs::read_dir(self.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        }
    }

    /// What one run of the binary printed.
    pub(crate) struct Run {
        pub(crate) code: Option<i32>,
        pub(crate) stdout: String,
        pub(crate) stderr: String,
    }

    impl Run {
        /// Panics with both streams unless the exit code is `code`.
        pub(crate) fn expect_code(&self, code: i32) -> &Self {
            assert_eq!(
                self.code,
                Some(code),
                "stdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
            assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
            self
        }

        pub(crate) fn has(&self, needle: &str) -> &Self {
            assert!(
                self.stdout.contains(needle),
                "missing {needle:?} in stdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
            self
        }

        pub(crate) fn has_err(&self, needle: &str) -> &Self {
            assert!(
                self.stderr.contains(needle),
                "missing {needle:?} in stderr:\n{}",
                self.stderr
            );
            self
        }

        /// The rest of the stdout line that starts with `label`.
        pub(crate) fn line(&self, label: &str) -> &str {
            self.stdout
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .unwrap_or_else(|| panic!("no line {label:?} in\n{}", self.stdout))
                .trim()
        }
    }

    /// The balances of accounts `0..accounts` in the store in `dir`, read with the
    /// library after the binary exited.
    pub(crate) fn balances(dir: &Path, accounts: u64) -> BTreeMap<u64, i64> {
        let db = Khonsu::open(dir).unwrap();
        let rows = db
            .start_transaction()
            .scan(Key::from(0_u64)..Key::from(accounts))
            .unwrap();
        rows.iter()
            .map(|(key, batch)| {
                let account = u64::from_be_bytes(key.as_bytes().try_into().unwrap());
                (account, last(batch, "balance"))
            })
            .collect()
    }

    /// The last value of the Int64 column `name`.
    pub(crate) fn last(batch: &RecordBatch, name: &str) -> i64 {
        let column = batch.column_by_name(name).unwrap();
        let values = column.as_any().downcast_ref::<Int64Array>().unwrap();
        values.value(values.len() - 1)
    }

    /// The `runs` field of the bank's record in `dir`.
    pub(crate) fn recorded_runs(dir: &Path) -> u64 {
        let db = Khonsu::open(dir).unwrap();
        let record = db
            .start_transaction()
            .read("demo/meta")
            .unwrap()
            .expect("the bank's record");
        let runs = record.column_by_name("runs").unwrap();
        runs.as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0)
    }

    /// A background `khonsu demo`, killed when dropped (even when a test fails).
    pub(crate) struct Background {
        pub(crate) child: Child,
        pub(crate) lines: mpsc::Receiver<String>,
    }

    impl Background {
        pub(crate) fn start(sandbox: &Sandbox, args: &[&str]) -> Self {
            let mut child = sandbox
                .command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (send, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            Self { child, lines }
        }

        /// Waits (up to [`DEADLINE`]) for a stdout line starting with `prefix`.
        pub(crate) fn wait_for_line(&self, prefix: &str) -> String {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if line.starts_with(prefix) => return line,
                    Ok(_) => {}
                    Err(e) => panic!("no line {prefix:?} from the background demo: {e}"),
                }
            }
        }
    }

    impl Drop for Background {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Polls (up to [`DEADLINE`]) until `path` exists.
    pub(crate) fn wait_for_file(path: &Path) {
        let deadline = Instant::now() + DEADLINE;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn short_demo_conserves_the_total() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&[
        "demo",
        "--in-memory",
        "--transfers",
        "2000",
        "--no-progress",
        "--seed",
        "1",
    ]);
    run.expect_code(0)
        .has("total conserved: yes")
        .has("committed transfers:  2000")
        .has("seed 1")
        .has("isolation:            serializable")
        .has("storage:              memory (nothing persists)")
        .has("bank:                 new, created by this run");
    // No durable figures without persistence.
    assert!(!run.stdout.contains("storage writes"), "{}", run.stdout);
}

#[test]
fn in_memory_creates_no_directory() {
    let sandbox = Sandbox::new();
    sandbox
        .run(&["demo", "--in-memory", "--transfers", "100", "--no-progress"])
        .expect_code(0);
    sandbox
        .run(&["demo", "--storage", "memory", "--transfers", "100"])
        .expect_code(0);
    assert_eq!(sandbox.entries(), Vec::<String>::new());
}

#[test]
fn every_isolation_level_conserves_with_fail() {
    let sandbox = Sandbox::new();
    for level in ["read-committed", "repeatable-read", "serializable"] {
        sandbox
            .run(&[
                "demo",
                "--in-memory",
                "--isolation",
                level,
                "--transfers",
                "1000",
                "--accounts",
                "20",
                "--threads",
                "3",
                "--no-progress",
            ])
            .expect_code(0)
            .has("total conserved: yes");
    }
}

#[test]
fn timed_demo_stops() {
    let sandbox = Sandbox::new();
    sandbox
        .run(&["demo", "--in-memory", "--seconds", "0.3", "--no-progress"])
        .expect_code(0)
        .has("stop after:           0.3 s");
}

#[test]
fn the_default_demo_persists_in_khonsu_data_and_a_second_run_resumes() {
    // The README's main command, minus the time: run twice in one directory.
    let sandbox = Sandbox::new();
    let args = ["demo", "--transfers", "200", "--accounts", "20"];
    let first = sandbox.run(&args);
    first
        .expect_code(0)
        .has("storage redb in khonsu-data")
        .has("bank: new, 20 accounts created with 1000 each (total 20000)")
        .has("storage:              redb in khonsu-data")
        .has("bank:                 new, created by this run")
        .has("(the commit call, which includes the durable write and its sync)")
        .has("storage writes:       ")
        .has("commits per write:    ")
        .has("commits per sync:     ")
        .has("total conserved: yes");
    assert_eq!(sandbox.entries(), ["khonsu-data"]);
    assert!(sandbox.path().join("khonsu-data/KHONSU").is_file());

    let second = sandbox.run(&["demo", "--transfers", "200"]);
    second
        .expect_code(0)
        .has("bank: resumed after 1 earlier run (this is run 2)")
        .has("bank:                 resumed after 1 earlier run (this is run 2)")
        .has("accounts:             20 (initial balance 1000 each)")
        .has("initial total:        20000 in 20 accounts (when the bank was created)")
        .has("total conserved: yes");
    assert_eq!(
        second.line("start total:"),
        "20000 in 20 accounts (as the last run left it)"
    );
    // The flags were those of the stored bank (defaults): no note.
    assert!(!second.stdout.contains("note:"), "{}", second.stdout);
    assert_eq!(recorded_runs(&sandbox.path().join("khonsu-data")), 2);
}

#[test]
fn a_second_run_starts_from_the_balances_the_first_left() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("bank");
    sandbox
        .run(&[
            "demo",
            "--data-dir",
            &dir,
            "--accounts",
            "20",
            "--transfers",
            "300",
            "--seed",
            "3",
        ])
        .expect_code(0)
        .has("total conserved: yes");
    let after_first = balances(Path::new(&dir), 20);
    assert_eq!(after_first.len(), 20);
    assert_eq!(after_first.values().sum::<i64>(), 20_000);
    let moved = after_first.values().filter(|b| **b != 1000).count();
    assert!(
        moved > 10,
        "the first run must leave most balances changed: {after_first:?}"
    );

    // Five transfers of 1 each, with other bank flags (ignored, with a note).
    let second = sandbox.run(&[
        "demo",
        "--data-dir",
        &dir,
        "--threads",
        "1",
        "--auditors",
        "0",
        "--transfers",
        "5",
        "--max-amount",
        "1",
        "--accounts",
        "30",
        "--initial-balance",
        "5",
    ]);
    second
        .expect_code(0)
        .has("bank: resumed after 1 earlier run")
        .has(
            "note: resuming the stored bank of 20 accounts with initial balance 1000; \
             --accounts 30 and --initial-balance 5 only shape a new bank and are ignored",
        )
        .has("accounts:             20 (initial balance 1000 each)")
        .has("start total:          20000 in 20 accounts")
        .has("total conserved: yes");
    let after_second = balances(Path::new(&dir), 20);
    let changed: Vec<_> = after_first
        .iter()
        .filter(|(account, balance)| after_second.get(account) != Some(balance))
        .collect();
    // Had the second run recreated the bank, most balances would be back at 1000.
    assert!(
        changed.len() <= 10,
        "5 transfers change at most 10 accounts: {after_first:?} -> {after_second:?}"
    );
    for (account, before) in &after_first {
        let delta = (after_second[account] - before).abs();
        assert!(delta <= 5, "account {account} moved by {delta}");
    }
    assert_eq!(after_second.values().sum::<i64>(), 20_000);
}

#[test]
fn inspect_reports_a_healthy_store() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("bank");
    sandbox
        .run(&[
            "demo",
            "--data-dir",
            &dir,
            "--accounts",
            "20",
            "--transfers",
            "50",
        ])
        .expect_code(0);
    let run = sandbox.run(&["inspect", &dir]);
    run.expect_code(0)
        .has(&format!("khonsu inspect: {dir}"))
        .has("adapter:          redb\n")
        // 20 accounts and the bank's record.
        .has("keys:             21\n")
        .has("rows:             21\n")
        .has("repaired:         no\n")
        .has("damaged:          0\n")
        .has("result: ok (every value decodes)");
    // One commit creates the bank (and counts the run), then 50 transfers; aborted attempts may
    // take timestamps too, so this is a lower bound.
    let last_commit: u64 = run.line("last commit ts:").parse().unwrap();
    assert!(last_commit >= 51, "{}", run.stdout);
    assert!(!run.line("bytes on disk:").starts_with("0 B"));
}

#[test]
fn inspect_finds_a_flipped_byte_in_every_value() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("bank");
    sandbox
        .run(&[
            "demo",
            "--data-dir",
            &dir,
            "--accounts",
            "20",
            "--transfers",
            "50",
        ])
        .expect_code(0);
    // Every stored value carries its schema, and so the field name "balance"
    // (the record's "initial_balance" too): change one letter of each.
    let file = Path::new(&dir).join("data.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(7).position(|w| w == b"balance") {
        bytes[at + found + 3] ^= 0x20;
        flipped += 1;
        at += found + 7;
    }
    assert!(flipped >= 21, "found {flipped} values");
    std::fs::write(&file, &bytes).unwrap();

    let run = sandbox.run(&["inspect", &dir]);
    run.expect_code(4)
        .has("data.redb is corrupt at key 0x0000000000000000")
        .has("checksum mismatch")
        .has("result: DAMAGED")
        .has_err("is damaged");
    let damaged: u64 = run.line("damaged:").parse().unwrap();
    assert!(damaged >= 21, "{}", run.stdout);

    // The demo refuses to start from it, naming the file.
    sandbox
        .run(&["demo", "--data-dir", &dir, "--transfers", "5"])
        .expect_code(1)
        .has_err("recovery from storage failed")
        .has_err("data.redb");
}

#[test]
fn inspect_finds_a_truncated_file() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("bank");
    sandbox
        .run(&["demo", "--data-dir", &dir, "--transfers", "20"])
        .expect_code(0);
    let file = Path::new(&dir).join("data.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    sandbox
        .run(&["inspect", &dir])
        .expect_code(4)
        .has_err("data.redb")
        .has_err("truncated");
}

#[test]
fn inspect_refuses_a_directory_that_is_not_a_store() {
    let sandbox = Sandbox::new();
    let empty = sandbox.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = sandbox.join("missing");
    for dir in [&empty, &missing] {
        sandbox
            .run(&["inspect", dir])
            .expect_code(1)
            .has_err(&format!("{dir} is not a Khonsu store"))
            .has_err("no KHONSU manifest");
    }
    // Inspecting never creates a store.
    assert!(!Path::new(&missing).exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn demo_refuses_a_directory_that_is_not_a_bank() {
    let sandbox = Sandbox::new();
    // A Khonsu store of something else.
    let other = sandbox.path().join("other");
    {
        let db = Khonsu::open(&other).unwrap();
        let batch = RecordBatch::try_from_iter([(
            "v",
            std::sync::Arc::new(Int64Array::from(vec![1])) as _,
        )])
        .unwrap();
        let mut t = db.start_transaction();
        t.write("orders/1", batch).unwrap();
        t.commit().unwrap();
    }
    let other = other.to_string_lossy().into_owned();
    sandbox
        .run(&["demo", "--data-dir", &other, "--transfers", "5"])
        .expect_code(1)
        .has_err("does not hold a khonsu demo bank")
        .has_err("\"orders/1\"")
        .has_err(&other);
    // A directory of other files.
    let files = sandbox.join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(Path::new(&files).join("notes.txt"), "mine").unwrap();
    sandbox
        .run(&["demo", "--data-dir", &files, "--transfers", "5"])
        .expect_code(1)
        .has_err("holds other files (notes.txt)");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 1);
}

#[test]
fn a_busy_data_dir_is_refused_and_a_killed_run_is_resumed() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("bank");
    // Runs far longer than the test needs; killed below.
    let first = Background::start(
        &sandbox,
        &[
            "demo",
            "--data-dir",
            &dir,
            "--accounts",
            "50",
            "--seconds",
            "600",
        ],
    );
    wait_for_file(&PathBuf::from(&dir).join("KHONSU"));
    // The bank is committed once its line is printed; the run is under way.
    first.wait_for_line("bank: new, 50 accounts");

    for args in [
        &["inspect", &dir][..],
        &["demo", "--data-dir", &dir, "--transfers", "5"],
    ] {
        sandbox
            .run(args)
            .expect_code(1)
            .has_err(&format!("the data directory {dir} is already open"))
            .has_err("LOCK");
    }

    // A crash (SIGKILL) in the middle of the transfers: the store recovers.
    drop(first);
    sandbox
        .run(&["inspect", &dir])
        .expect_code(0)
        .has("keys:             51\n");
    sandbox
        .run(&["demo", "--data-dir", &dir, "--transfers", "50"])
        .expect_code(0)
        .has("bank: resumed after 1 earlier run (this is run 2)")
        .has("initial total:        50000 in 50 accounts")
        .has("start total:          50000 in 50 accounts")
        .has("total conserved: yes");
}

#[cfg(not(feature = "fjall"))]
#[test]
fn storage_fjall_without_the_feature_says_how_to_rebuild() {
    let sandbox = Sandbox::new();
    sandbox
        .run(&["demo", "--storage", "fjall", "--transfers", "5"])
        .expect_code(2)
        .has_err("rebuild with `--features fjall`");
    assert_eq!(sandbox.entries(), Vec::<String>::new());
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_persists_and_resumes() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("lsm");
    let args = [
        "demo",
        "--storage",
        "fjall",
        "--data-dir",
        &dir,
        "--accounts",
        "20",
        "--transfers",
        "100",
    ];
    sandbox
        .run(&args)
        .expect_code(0)
        .has(&format!("storage:              fjall in {dir}"))
        .has("(fjall adapter, this run)")
        .has("bank:                 new, created by this run");
    sandbox
        .run(&args)
        .expect_code(0)
        .has("bank:                 resumed after 1 earlier run (this is run 2)")
        .has("total conserved: yes");
    sandbox
        .run(&["inspect", &dir])
        .expect_code(0)
        .has("adapter:          fjall\n")
        .has("keys:             21\n");
    // The default adapter refuses a fjall store, naming it.
    sandbox
        .run(&["demo", "--data-dir", &dir, "--transfers", "5"])
        .expect_code(1)
        .has_err("fjall");
}

/// Issue 16, item 5: a flipped byte of an lsm-tree version file made `khonsu inspect` abort
/// with the process (exit 134); it is damage, named, exit 4.
#[cfg(feature = "fjall")]
#[test]
fn inspect_finds_a_damaged_fjall_version_file() {
    let sandbox = Sandbox::new();
    let dir = sandbox.join("lsm");
    sandbox
        .run(&[
            "demo",
            "--storage",
            "fjall",
            "--data-dir",
            &dir,
            "--accounts",
            "20",
            "--transfers",
            "50",
        ])
        .expect_code(0);
    let keyspace = Path::new(&dir).join("fjall/keyspaces/1");
    let current = std::fs::read(keyspace.join("current")).unwrap();
    let id = u64::from_le_bytes(current[..8].try_into().unwrap());
    let version = keyspace.join(format!("v{id}"));
    let mut bytes = std::fs::read(&version).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&version, bytes).unwrap();
    sandbox
        .run(&["inspect", &dir])
        .expect_code(4)
        .has_err(&format!("v{id}"))
        .has_err("checksum");
}

/// Issue 16, item 3: an intact value that this build cannot decode (written through the
/// storage API, as an earlier build's `write` let it) is not damage: `inspect` names the key,
/// says the bytes are intact, and exits with 5.
#[test]
fn inspect_tells_an_undecodable_value_from_damage() {
    use std::sync::Arc;

    use khonsu::storage::{CommitRecord, RedbStorage, Storage, StorageMutation, WriteGroup};

    let sandbox = Sandbox::new();
    let dir = sandbox.join("deep");
    let deep = Arc::new(khonsu::arrow_utils::sample::nested_list(100).unwrap());
    {
        let store = RedbStorage::open(&dir).unwrap();
        let record = CommitRecord {
            commit_ts: 1,
            mutations: vec![StorageMutation::put("too-deep", deep).unwrap()],
        };
        store.write(WriteGroup::new(&[&record])).unwrap();
    }
    sandbox
        .run(&["inspect", &dir])
        .expect_code(5)
        .has("undecodable:      1")
        .has("too-deep")
        .has("intact")
        .has_err("is not damaged");
}

#[test]
fn help_lists_every_flag() {
    let sandbox = Sandbox::new();
    let top = sandbox.run(&["--help"]);
    top.expect_code(0)
        .has("demo")
        .has("inspect")
        .has("Exit codes")
        .has("4  inspect: the store is damaged");

    let demo = sandbox.run(&["demo", "--help"]);
    demo.expect_code(0);
    for flag in [
        "--isolation",
        "--resolution",
        "--threads",
        "--accounts",
        "--seconds",
        "--transfers",
        "--seed",
        "--auditors",
        "--initial-balance",
        "--max-amount",
        "--no-progress",
        "--data-dir",
        "--storage",
        "--in-memory",
        "khonsu-data",
        "redb",
        "fjall",
        "memory",
        "--features fjall",
        "resumes the bank",
        "demo/meta",
        "read-committed",
        "repeatable-read",
        "serializable",
        "replace",
        "ignore",
        "append",
    ] {
        demo.has(flag);
    }

    sandbox
        .run(&["inspect", "--help"])
        .expect_code(0)
        .has("<DIR>")
        .has("takes the directory's lock")
        .has("Exit codes");
}

#[test]
fn bad_flags_are_usage_errors() {
    let sandbox = Sandbox::new();
    for args in [
        &["demo", "--isolation", "snapshot"][..],
        &["demo", "--threads", "0"],
        &["demo", "--accounts", "1"],
        &["demo", "--seconds", "-1"],
        &["demo", "--transfers", "lots"],
        &["demo", "--storage", "sqlite"],
        &["demo", "--in-memory", "--storage", "redb"],
        &["demo", "--in-memory", "--data-dir", "d"],
        &["demo", "--storage", "memory", "--data-dir", "d"],
        &["inspect"],
        &["frobnicate"],
        &[],
    ] {
        let run = sandbox.run(args);
        run.expect_code(2);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(sandbox.entries(), Vec::<String>::new());
}
