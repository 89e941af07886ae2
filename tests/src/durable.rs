//! Helpers for the tests of durable stores (`crash_recovery.rs`, `damaged_files.rs`,
//! `single_process_open.rs`) and for the `crash-child` binary they run.
//!
//! # The bank
//!
//! Every durable test stores the same small bank, so that one check ([`check_bank`]) says whether
//! a recovered state could have come from whole transactions only:
//!
//! | key | rows (`Int64` column `v`) |
//! |---|---|
//! | [`META_KEY`] | `[accounts, total]`, written with the accounts in the creating transaction |
//! | `bank/acct/NNNN` ([`account`]) | `[balance, touches]`: touches counts the transfers that wrote it |
//! | `bank/seq/NN` ([`seq_key`]) | `[count, touched]`: thread `NN`'s committed transfers, and how many account writes they made |
//! | [`PROBE_KEY`] | `[round]`: the last commit of the crash test's parent process |
//!
//! A [`transfer`] moves money between 2–3 accounts, adds one to each account's `touches`, and in
//! the same transaction adds one to its thread's `count` and the number of accounts to its
//! `touched`. So in any state made of whole transactions the balances sum to the initial total,
//! the accounts' touches sum to the threads' `touched`, and `2 * count <= touched <= 3 * count`
//! for every thread; a transaction present in part breaks one of these.
//!
//! # The child process
//!
//! [`CrashChild`] starts `crash-child DIR ADAPTER SEED THREADS ACCOUNTS`, collects the lines it
//! prints (`ready`, then `ack THREAD SEQ COMMIT_TS` after each commit returned) on a reader
//! thread, and kills it with `SIGKILL`. A `CrashChild` that is dropped kills its process, so a
//! failing test leaves no process behind.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use khonsu::prelude::*;
use khonsu::storage;
use snafu::{ResultExt as _, Snafu};

use crate::{Rng, batch_of, int, key, values};

/// The key holding `[accounts, total]`; present exactly when the bank was created.
pub const META_KEY: &str = "bank/meta";
/// The prefix of the account keys.
pub const ACCOUNT_PREFIX: &str = "bank/acct/";
/// The prefix of the per-thread sequence keys.
pub const SEQ_PREFIX: &str = "bank/seq/";
/// The key the crash test's parent commits to after each recovery.
pub const PROBE_KEY: &str = "probe";
/// Every account's balance when the bank is created.
pub const INITIAL_BALANCE: i64 = 1_000;
/// How often [`transfer`] retries a conflict before giving up.
const MAX_CONFLICT_RETRIES: u32 = 100_000;

/// The key of account `i`.
#[must_use]
pub fn account(i: usize) -> Key {
    key(format!("{ACCOUNT_PREFIX}{i:04}"))
}

/// The sequence key of transfer thread `thread`.
#[must_use]
pub fn seq_key(thread: usize) -> Key {
    key(format!("{SEQ_PREFIX}{thread:02}"))
}

/// The bank's total: `accounts * INITIAL_BALANCE`.
#[must_use]
pub fn bank_total(accounts: usize) -> i64 {
    int(accounts).saturating_mul(INITIAL_BALANCE)
}

/// What can go wrong in these helpers and in the `crash-child` binary.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum DurableError {
    /// The storage adapter could not open the directory.
    #[snafu(display("the {adapter} adapter could not open the store"))]
    OpenStorage {
        /// `redb` or `fjall`.
        adapter: &'static str,
        /// The adapter's error (it names the path).
        source: storage::Error,
    },
    /// Building (recovering) the database failed.
    #[snafu(display("the database over the {adapter} store could not be opened"))]
    Build {
        /// `redb` or `fjall`.
        adapter: &'static str,
        /// The engine's error (it names the path).
        source: khonsu::Error,
    },
    /// A transaction of the bank failed.
    #[snafu(display("bank transaction failed: {what}"))]
    Txn {
        /// Which one.
        what: &'static str,
        /// The engine's error.
        source: khonsu::Error,
    },
    /// The store holds a bank of another shape.
    #[snafu(display("the stored bank does not match: {message}"))]
    BankShape {
        /// How.
        message: String,
    },
    /// Bad command-line arguments of `crash-child`.
    #[snafu(display("{message}\nusage: crash-child DIR redb|fjall SEED THREADS ACCOUNTS"))]
    Usage {
        /// What is wrong.
        message: String,
    },
    /// Writing to standard output failed (typically: the parent is gone).
    #[snafu(display("could not write to stdout"))]
    Stdout {
        /// The error.
        source: std::io::Error,
    },
}

/// A durable storage adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// `RedbStorage`, the embedded default (`DIR/data.redb`).
    Redb,
    /// `FjallStorage` (`DIR/fjall/`); opening it fails unless khonsu-tests is built with the
    /// feature `fjall`.
    Fjall,
}

impl Adapter {
    /// The name its manifests carry and `crash-child` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Fjall => "fjall",
        }
    }

    /// The adapter called `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "redb" => Some(Self::Redb),
            "fjall" => Some(Self::Fjall),
            _ => None,
        }
    }

    /// The adapter's own file or directory inside a data directory.
    #[must_use]
    pub fn entry(self) -> &'static str {
        match self {
            Self::Redb => "data.redb",
            Self::Fjall => "fjall",
        }
    }

    /// Opens the adapter's storage in `dir`.
    ///
    /// # Errors
    /// The adapter's error.
    pub fn storage(self, dir: &Path) -> Result<Arc<dyn Storage>, storage::Error> {
        match self {
            Self::Redb => Ok(Arc::new(RedbStorage::open(dir)?)),
            #[cfg(feature = "fjall")]
            Self::Fjall => Ok(Arc::new(FjallStorage::open(dir)?)),
            #[cfg(not(feature = "fjall"))]
            Self::Fjall => Err(storage::Error::backend(
                "khonsu-tests was built without its `fjall` feature",
            )),
        }
    }

    /// Opens the database in `dir` the way an application picks an adapter: the adapter's
    /// storage given to `Khonsu::builder().storage(..)`, then `build()` (which recovers).
    ///
    /// # Errors
    /// [`DurableError::OpenStorage`] or [`DurableError::Build`].
    pub fn build(self, dir: &Path) -> Result<Khonsu, DurableError> {
        let adapter = self.name();
        let storage = self.storage(dir).context(OpenStorageSnafu { adapter })?;
        Khonsu::builder()
            .storage(storage)
            .build()
            .context(BuildSnafu { adapter })
    }

    /// Opens the database in `dir` as a user would: `Khonsu::open(dir)` for redb (the default
    /// store), [`build`](Self::build) for fjall.
    ///
    /// # Errors
    /// As for [`build`](Self::build).
    pub fn open(self, dir: &Path) -> Result<Khonsu, DurableError> {
        match self {
            Self::Redb => Khonsu::open(dir).context(BuildSnafu {
                adapter: self.name(),
            }),
            Self::Fjall => self.build(dir),
        }
    }
}

/// The first `khonsu::storage::Error` in the cause chain of `err`, if any.
#[must_use]
pub fn storage_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a storage::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(s) = e.downcast_ref::<storage::Error>() {
            return Some(s);
        }
        if let Some(s) = e.downcast_ref::<Box<storage::Error>>() {
            return Some(s);
        }
        cur = e.source();
    }
    None
}

/// The full report of `err` (every cause), as one string.
#[must_use]
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    snafu::Report::from_error(err).to_string()
}

/// Creates the bank (`accounts` accounts of [`INITIAL_BALANCE`], and [`META_KEY`]) in one
/// transaction if [`META_KEY`] is absent. Returns whether it created it.
///
/// # Errors
/// A failed transaction, or a stored bank with another number of accounts.
pub fn ensure_bank(db: &Khonsu, accounts: usize) -> Result<bool, DurableError> {
    let mut t = db.start_transaction();
    let what = "create the bank";
    let meta = t.read(META_KEY).context(TxnSnafu { what })?;
    if let Some(meta) = meta {
        let found = values(&meta);
        let expected = vec![int(accounts), bank_total(accounts)];
        if found != expected {
            return BankShapeSnafu {
                message: format!("{META_KEY} holds {found:?}, expected {expected:?}"),
            }
            .fail();
        }
        t.rollback();
        return Ok(false);
    }
    t.write(META_KEY, batch_of(&[int(accounts), bank_total(accounts)]))
        .context(TxnSnafu { what })?;
    for i in 0..accounts {
        t.write(account(i), batch_of(&[INITIAL_BALANCE, 0]))
            .context(TxnSnafu { what })?;
    }
    t.commit().context(TxnSnafu { what })?;
    Ok(true)
}

/// A committed transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The thread's sequence number after it (its `count`).
    pub seq: i64,
    /// Its commit timestamp.
    pub commit_ts: Timestamp,
    /// Conflicts retried before it committed.
    pub conflicts: u32,
}

/// The two values of a `[a, b]` batch (`[0, 0]` if absent).
fn pair(b: Option<&Arc<arrow_array::RecordBatch>>) -> Result<(i64, i64), DurableError> {
    match b.map(|b| values(b)).as_deref() {
        None => Ok((0, 0)),
        Some(&[a, b]) => Ok((a, b)),
        Some(other) => BankShapeSnafu {
            message: format!("expected two rows, found {other:?}"),
        }
        .fail(),
    }
}

/// One transfer of thread `thread` over a bank of `accounts` (at least 3) accounts: moves money
/// from one account to one or two others (2–3 accounts in all), and bumps the thread's
/// sequence key, in one transaction; retries conflicts.
///
/// # Errors
/// A non-conflict error, or a conflict after many retries.
pub fn transfer(
    db: &Khonsu,
    thread: usize,
    accounts: usize,
    rng: &mut Rng,
) -> Result<Transfer, DurableError> {
    let what = "transfer";
    let mut conflicts = 0;
    loop {
        let mut t = db.start_transaction();
        let touched = 2 + rng.index(2);
        let mut picked: Vec<usize> = Vec::with_capacity(touched);
        while picked.len() < touched.min(accounts) {
            let i = rng.index(accounts);
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        let mut rows = Vec::with_capacity(picked.len());
        for &i in &picked {
            let stored = t.read(account(i)).context(TxnSnafu { what })?;
            rows.push(pair(stored.as_ref())?);
        }
        let (count, done) = pair(t.read(seq_key(thread)).context(TxnSnafu { what })?.as_ref())?;
        // The first account pays `paid`; the others receive it, split when there are two.
        let paid = rows
            .first()
            .map_or(0, |(balance, _)| int(rng.index(100)).min(*balance));
        let mut left = paid;
        let last = rows.len().saturating_sub(1);
        for (n, (&i, (balance, touches))) in picked.iter().zip(&rows).enumerate() {
            let new_balance = if n == 0 {
                balance - paid
            } else if n == last {
                balance + left
            } else {
                let part = paid / 2;
                left -= part;
                balance + part
            };
            t.write(account(i), batch_of(&[new_balance, touches + 1]))
                .context(TxnSnafu { what })?;
        }
        let seq = count + 1;
        t.write(seq_key(thread), batch_of(&[seq, done + int(picked.len())]))
            .context(TxnSnafu { what })?;
        match t.commit() {
            Ok(info) => {
                return Ok(Transfer {
                    seq,
                    commit_ts: info.commit_ts,
                    conflicts,
                });
            }
            Err(e) if e.is_conflict() && conflicts < MAX_CONFLICT_RETRIES => {
                conflicts += 1;
                std::thread::yield_now();
            }
            Err(e) => return Err(e).context(TxnSnafu { what }),
        }
    }
}

/// Every committed key and its rows, read by one read-only transaction's full scan.
pub type State = BTreeMap<Key, Vec<i64>>;

/// The committed state of `db` (one read-only scan, so atomic).
///
/// # Errors
/// A failed scan.
pub fn state(db: &Khonsu) -> Result<State, DurableError> {
    let mut t = db.start_transaction_with(TransactionOptions::new().read_only(true));
    let rows = t.scan(..).context(TxnSnafu {
        what: "scan the store",
    })?;
    t.rollback();
    Ok(rows.into_iter().map(|(k, b)| (k, values(&b))).collect())
}

/// A bank that passed [`check_bank`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bank {
    /// Whether the bank was created (else nothing is stored but perhaps the probe).
    pub created: bool,
    /// The balance of each account.
    pub balances: Vec<i64>,
    /// Each thread's `(count, touched)`.
    pub seqs: BTreeMap<usize, (i64, i64)>,
    /// The probe's round, if it was written.
    pub probe: Option<i64>,
}

impl Bank {
    /// Thread `thread`'s count of committed transfers (0 if it never committed one).
    #[must_use]
    pub fn seq(&self, thread: usize) -> i64 {
        self.seqs.get(&thread).map_or(0, |(count, _)| *count)
    }

    /// Committed transfers of every thread.
    #[must_use]
    pub fn transfers(&self) -> i64 {
        self.seqs.values().map(|(count, _)| count).sum()
    }
}

/// Checks that `state` is a bank of `accounts` accounts made of whole transactions (see the
/// [module docs](self)), or a store where the bank was not created yet (nothing is stored but
/// perhaps the probe; [`Bank::created`] is false).
///
/// # Errors
/// A description of the first violated invariant.
pub fn check_bank(state: &State, accounts: usize) -> Result<Bank, String> {
    let mut bank = Bank::default();
    let mut meta = None;
    let mut account_writes = 0;
    for (k, rows) in state {
        let name = String::from_utf8_lossy(k.as_ref()).into_owned();
        let two = match rows.as_slice() {
            &[a, b] => Some((a, b)),
            _ => None,
        };
        if name == META_KEY {
            meta = Some(rows.clone());
        } else if name == PROBE_KEY {
            match rows.as_slice() {
                &[round] => bank.probe = Some(round),
                other => return Err(format!("{PROBE_KEY} holds {other:?}")),
            }
        } else if let Some(i) = name.strip_prefix(ACCOUNT_PREFIX) {
            let Some((balance, touches)) = two else {
                return Err(format!("{name} holds {rows:?}, not [balance, touches]"));
            };
            if account(bank.balances.len()) != *k {
                return Err(format!(
                    "account {i} found where account {} was due",
                    bank.balances.len()
                ));
            }
            if balance < 0 || touches < 0 {
                return Err(format!(
                    "{name} holds {rows:?}: a negative balance or count"
                ));
            }
            bank.balances.push(balance);
            account_writes += touches;
        } else if let Some(t) = name.strip_prefix(SEQ_PREFIX) {
            let Some((count, touched)) = two else {
                return Err(format!("{name} holds {rows:?}, not [count, touched]"));
            };
            let Ok(thread) = t.parse::<usize>() else {
                return Err(format!("{name}: not a thread number"));
            };
            if count < 1 || touched < 2 * count || touched > 3 * count {
                return Err(format!(
                    "{name} holds {rows:?}: each transfer touches 2 or 3 accounts"
                ));
            }
            bank.seqs.insert(thread, (count, touched));
        } else {
            return Err(format!("unexpected key {name} holding {rows:?}"));
        }
    }
    let Some(meta) = meta else {
        if bank.balances.is_empty() && bank.seqs.is_empty() {
            return Ok(bank);
        }
        return Err(format!(
            "{} accounts and {} sequence keys but no {META_KEY}: part of the creating \
             transaction is missing",
            bank.balances.len(),
            bank.seqs.len()
        ));
    };
    let expected_meta = vec![int(accounts), bank_total(accounts)];
    if meta != expected_meta {
        return Err(format!(
            "{META_KEY} holds {meta:?}, expected {expected_meta:?}"
        ));
    }
    if bank.balances.len() != accounts {
        return Err(format!(
            "{} accounts, expected {accounts}",
            bank.balances.len()
        ));
    }
    let total: i64 = bank.balances.iter().sum();
    if total != bank_total(accounts) {
        return Err(format!(
            "the balances sum to {total}, expected {}: money created or destroyed",
            bank_total(accounts)
        ));
    }
    let seq_writes: i64 = bank.seqs.values().map(|(_, touched)| touched).sum();
    if account_writes != seq_writes {
        return Err(format!(
            "the accounts were written by {account_writes} transfers, the sequence keys count \
             {seq_writes} account writes: a transfer is present in part"
        ));
    }
    bank.created = true;
    Ok(bank)
}

/// A line `crash-child` printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The transfer thread.
    pub thread: usize,
    /// The thread's sequence number after the commit.
    pub seq: i64,
    /// The commit timestamp.
    pub commit_ts: Timestamp,
}

impl Ack {
    /// Parses `ack THREAD SEQ COMMIT_TS`.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.strip_prefix("ack ")?.split(' ');
        let ack = Self {
            thread: words.next()?.parse().ok()?,
            seq: words.next()?.parse().ok()?,
            commit_ts: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(ack)
    }
}

enum Event {
    Line(String),
    /// Bytes after the last newline when the pipe closed.
    Partial(String),
    Eof,
}

/// What a killed child printed, and how it ended.
#[derive(Debug)]
pub struct ChildRun {
    /// Whether it printed `ready`.
    pub ready: bool,
    /// Every acknowledged commit, in the order printed.
    pub acks: Vec<Ack>,
    /// Lines that were neither `ready` nor an ack (a torn last line included).
    pub other: Vec<String>,
    /// Its standard error.
    pub stderr: String,
    /// How it ended.
    pub status: ExitStatus,
}

impl ChildRun {
    /// Whether it ended by a signal (the kill), not by exiting on its own.
    #[must_use]
    pub fn was_killed(&self) -> bool {
        #[cfg(unix)]
        {
            std::os::unix::process::ExitStatusExt::signal(&self.status).is_some()
        }
        #[cfg(not(unix))]
        {
            !self.status.success()
        }
    }
}

/// A running `crash-child` process.
pub struct CrashChild {
    child: Child,
    events: Receiver<Event>,
    stderr: Option<JoinHandle<String>>,
    ready: bool,
    eof: bool,
    acks: Vec<Ack>,
    other: Vec<String>,
    reaped: bool,
}

impl CrashChild {
    /// Starts `exe DIR ADAPTER SEED THREADS ACCOUNTS` with piped output.
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn(
        exe: &Path,
        dir: &Path,
        adapter: Adapter,
        seed: u64,
        threads: usize,
        accounts: usize,
    ) -> std::io::Result<Self> {
        let mut child = Command::new(exe)
            .arg(dir)
            .arg(adapter.name())
            .arg(seed.to_string())
            .arg(threads.to_string())
            .arg(accounts.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, events) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).into_owned();
                            let event = match text.strip_suffix('\n') {
                                Some(l) => Event::Line(l.to_owned()),
                                None => Event::Partial(text),
                            };
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(Event::Eof);
            });
        }
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        Ok(Self {
            child,
            events,
            stderr,
            ready: false,
            eof: false,
            acks: Vec::new(),
            other: Vec::new(),
            reaped: false,
        })
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Line(line) if line == "ready" => self.ready = true,
            Event::Line(line) => match Ack::parse(&line) {
                Some(ack) => self.acks.push(ack),
                None => self.other.push(line),
            },
            Event::Partial(text) => self.other.push(text),
            Event::Eof => self.eof = true,
        }
    }

    /// Takes the child's output until `done` holds, the output ends, or `timeout` passes;
    /// returns whether `done` held.
    fn pump_until(&mut self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if self.eof {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => return done(self),
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
        true
    }

    /// Waits until the child printed `ready`; `false` if it ended or `timeout` passed first.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        self.pump_until(timeout, |c| c.ready)
    }

    /// Waits until the child acknowledged `n` commits in all; `false` if it ended or `timeout`
    /// passed first.
    pub fn wait_acks(&mut self, n: usize, timeout: Duration) -> bool {
        self.pump_until(timeout, |c| c.acks.len() >= n)
    }

    /// Takes the child's output for `duration` (or until it ends).
    pub fn pump_for(&mut self, duration: Duration) {
        self.pump_until(duration, |_| false);
    }

    /// The commits acknowledged so far.
    #[must_use]
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// Kills the child (`SIGKILL` on unix), waits for it, and collects everything it printed.
    ///
    /// # Errors
    /// When it cannot be killed or waited for.
    pub fn kill(mut self) -> std::io::Result<ChildRun> {
        self.child.kill()?;
        let status = self.child.wait()?;
        self.reaped = true;
        // The pipe's write end closed with the process: the reader ends after the last line.
        while !self.eof {
            match self.events.recv() {
                Ok(event) => self.handle(event),
                Err(_) => self.eof = true,
            }
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(ChildRun {
            ready: self.ready,
            acks: std::mem::take(&mut self.acks),
            other: std::mem::take(&mut self.other),
            stderr,
            status,
        })
    }
}

impl Drop for CrashChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A data directory's files held in memory: the path under the directory, the bytes up to the
/// last non-zero one, and the full length (a fjall journal is preallocated with zeros, so
/// copying only its used prefix and extending it sparsely keeps each copy cheap).
pub type Files = Vec<(PathBuf, Vec<u8>, u64)>;

/// Reads every file under `dir` (recursively, the lock file included).
///
/// # Errors
/// I/O errors.
pub fn read_files(dir: &Path) -> std::io::Result<Files> {
    fn walk(root: &Path, dir: &Path, out: &mut Files) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else {
                let bytes = std::fs::read(&path)?;
                let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
                let mut bytes = bytes;
                bytes.truncate(used);
                let name = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                out.push((name, bytes, len));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// How [`write_files`] changes one file.
#[derive(Clone, Debug)]
pub enum Damage {
    /// No change.
    None,
    /// XOR the byte at `at` with `mask`.
    Flip {
        /// The byte's offset.
        at: usize,
        /// A non-zero mask.
        mask: u8,
    },
    /// Cut the file to `len` bytes.
    Truncate {
        /// The new length.
        len: u64,
    },
    /// Replace the contents with these bytes.
    Replace(Vec<u8>),
}

/// Writes `files` under `to`, the file `name` changed by `damage`; every other file gets its
/// full length back (sparsely).
///
/// # Errors
/// I/O errors.
pub fn write_files(files: &Files, to: &Path, name: &Path, damage: &Damage) -> std::io::Result<()> {
    for (path, used, len) in files {
        let target = to.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = std::borrow::Cow::Borrowed(used.as_slice());
        let mut full_len = *len;
        if path == name {
            match damage {
                Damage::None => {}
                Damage::Flip { at, mask } => {
                    let mut b = used.clone();
                    if let Some(byte) = b.get_mut(*at) {
                        *byte ^= mask;
                    } else {
                        // A flip in the zero tail: materialize up to it.
                        b.resize(at + 1, 0);
                        if let Some(byte) = b.get_mut(*at) {
                            *byte = *mask;
                        }
                    }
                    bytes = b.into();
                }
                Damage::Truncate { len: cut } => {
                    let cut_at = usize::try_from(*cut).unwrap_or(usize::MAX).min(used.len());
                    bytes = used.get(..cut_at).unwrap_or(used).to_vec().into();
                    full_len = *cut;
                }
                Damage::Replace(new) => {
                    bytes = new.clone().into();
                    full_len = u64::try_from(new.len()).unwrap_or(u64::MAX);
                }
            }
        }
        std::fs::write(&target, &bytes)?;
        let file = std::fs::OpenOptions::new().write(true).open(&target)?;
        let written = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        file.set_len(full_len.max(written))?;
    }
    Ok(())
}
