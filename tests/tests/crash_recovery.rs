//! Crash recovery: a process killed with `SIGKILL` in the middle of committing loses no
//! acknowledged commit, leaves no transaction in part, and the clock never runs backwards.
//!
//! Each round starts `crash-child` (bank transfers on several threads, one `ack THREAD SEQ TS`
//! line after each `commit` returned) on the same data directory, kills it at a moment drawn
//! from the seeded generator (while it starts, a while after `ready`, or once it acknowledged a
//! number of commits), then reopens the directory in this process and checks:
//!
//! * every acknowledged commit is there: each thread's stored sequence number is at least the
//!   last one it acknowledged, and at most one more (the one commit a thread can have in flight:
//!   durable when the kill came, not yet acknowledged);
//! * no transaction is there in part: the bank invariants of `khonsu_tests::durable` (total
//!   conserved, account count unchanged, account writes matching the sequence keys);
//! * the clock moved forward: `visible_ts()` is at least the newest acknowledged commit, a new
//!   commit gets a timestamp above it, and the next child's commits get timestamps above that.
//!
//! The state accumulates across rounds, as in a restart loop; the first round may kill the child
//! while it creates the store (`*_creation_survives_kill_9` aims at that moment on purpose). `KHONSU_CRASH_ROUNDS=N` runs `N` rounds (default 100 for redb, 50 for fjall);
//! `KHONSU_SEED` replays the kill points. No assertion depends on timing: when to kill is
//! random, what must hold does not depend on it.

use std::path::Path;
use std::time::Duration;

use khonsu::prelude::*;
use khonsu_tests::durable::{
    Ack, Adapter, Bank, ChildRun, CrashChild, PROBE_KEY, check_bank, report, state,
};
use khonsu_tests::*;

const THREADS: usize = 4;
const ACCOUNTS: usize = 12;
/// How long to wait for the child's output before calling it stuck (not a timing assertion: a
/// healthy child prints `ready` and its acks in milliseconds).
const STUCK: Duration = Duration::from_secs(120);

/// When a round kills the child.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after starting it, `ready` or not (a kill while it opens and recovers).
    WhileStarting(Duration),
    /// This long after it printed `ready`.
    DelayAfterReady(Duration),
    /// Once it acknowledged this many commits.
    OnAck(usize),
}

impl Kill {
    /// A kill point, also while the child creates or opens the store.
    fn draw(rng: &mut Rng) -> Self {
        match rng.below(10) {
            0 => Self::WhileStarting(Duration::from_micros(rng.below(20_000))),
            1..=3 => Self::DelayAfterReady(Duration::from_millis(rng.below(30))),
            _ => Self::OnAck(1 + rng.index(80)),
        }
    }
}

/// `KHONSU_CRASH_ROUNDS`, or `default`.
fn rounds(default: usize) -> usize {
    std::env::var("KHONSU_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// What the rounds so far established.
#[derive(Debug, Default)]
struct Known {
    /// Each thread's stored sequence number at the last recovery.
    seqs: [i64; THREADS],
    /// The timestamp of this process's last commit (above every earlier one).
    last_ts: Timestamp,
    /// The round of this process's last commit.
    probe: Option<i64>,
    /// Whether a recovery found the bank.
    created: bool,
}

/// What the acks of one round say must have been stored.
struct Acked {
    /// Each thread's last acknowledged sequence number (the known one if it acked nothing).
    seqs: [i64; THREADS],
    /// The newest acknowledged commit timestamp (0 if none).
    newest_ts: Timestamp,
}

/// Per-run counts for the summary line.
#[derive(Debug, Default)]
struct Summary {
    acks: Vec<usize>,
    before_ready: usize,
    without_acks: usize,
    durable_unacked: usize,
}

/// Starts the child on `dir`, kills it as `kill` says, and returns what it printed.
fn run_child(round: usize, kill: Kill, dir: &Path, adapter: Adapter, seed: u64) -> ChildRun {
    let exe = Path::new(env!("CARGO_BIN_EXE_crash-child"));
    let mut child = must(
        CrashChild::spawn(exe, dir, adapter, seed, THREADS, ACCOUNTS),
        "starting crash-child",
    );
    let reached = match kill {
        Kill::WhileStarting(delay) => {
            child.pump_for(delay);
            true
        }
        Kill::DelayAfterReady(delay) => {
            let ready = child.wait_ready(STUCK);
            child.pump_for(delay);
            ready
        }
        Kill::OnAck(n) => child.wait_ready(STUCK) && child.wait_acks(n, STUCK),
    };
    let ran = must(child.kill(), "killing crash-child");
    assert!(
        reached && ran.was_killed() && ran.other.is_empty(),
        "round {round} ({kill:?}): the child ended on its own ({:?}), stopped short of the kill \
         point ({} acks) or printed something unexpected ({:?}); its stderr:\n{}",
        ran.status,
        ran.acks.len(),
        ran.other,
        ran.stderr
    );
    assert!(
        ran.ready || ran.acks.is_empty(),
        "round {round}: acks before ready"
    );
    ran
}

/// Checks the acks of one round against what the previous rounds established.
fn check_acks(round: usize, acks: &[Ack], known: &Known) -> Acked {
    let mut acked = Acked {
        seqs: known.seqs,
        newest_ts: 0,
    };
    let mut thread_ts = [known.last_ts; THREADS];
    for ack in acks {
        let (Some(seq), Some(ts)) = (
            acked.seqs.get_mut(ack.thread),
            thread_ts.get_mut(ack.thread),
        ) else {
            panic!("round {round}: an ack of an unknown thread: {ack:?}");
        };
        assert_eq!(
            ack.seq,
            *seq + 1,
            "round {round}: {ack:?} follows seq {seq}: each commit of a thread bumps the \
             sequence number it read from the recovered store ({:?}) by one",
            known.seqs
        );
        assert!(
            ack.commit_ts > *ts,
            "round {round}: {ack:?} is not after {ts} (the thread's previous commit, or this \
             process's last commit before the child started): the clock went backwards"
        );
        *seq = ack.seq;
        *ts = ack.commit_ts;
        acked.newest_ts = acked.newest_ts.max(ack.commit_ts);
    }
    acked
}

/// Reopens `dir` after the kill and checks the recovered state and clock; commits once more and
/// records what is now known. Returns how many threads had a durable but unacknowledged commit.
fn recover_and_check(
    round: usize,
    kill: Kill,
    dir: &Path,
    adapter: Adapter,
    acked: &Acked,
    known: &mut Known,
) -> usize {
    let db = adapter.open(dir).unwrap_or_else(|e| {
        panic!(
            "round {round} ({kill:?}): reopening failed:\n{}",
            report(&e)
        )
    });
    let recovered = must(state(&db), "reading the recovered store");
    let bank: Bank = check_bank(&recovered, ACCOUNTS).unwrap_or_else(|violation| {
        panic!(
            "round {round} ({kill:?}): recovered a state no sequence of whole transactions makes: \
             {violation}\n{recovered:?}"
        )
    });
    assert!(
        bank.created || (!known.created && acked.newest_ts == 0),
        "round {round} ({kill:?}): the bank is gone after recovery"
    );
    known.created = bank.created;
    assert_eq!(
        bank.probe, known.probe,
        "round {round}: this process's commit after the previous recovery is lost"
    );
    let mut unacked = 0;
    for (thread, (last_acked, known_seq)) in acked.seqs.iter().zip(&mut known.seqs).enumerate() {
        let stored = bank.seq(thread);
        assert!(
            stored >= *last_acked,
            "round {round} ({kill:?}): thread {thread}'s acknowledged commit {last_acked} is lost \
             (stored seq {stored})"
        );
        assert!(
            stored <= last_acked + 1,
            "round {round} ({kill:?}): thread {thread} has {stored} commits stored, but \
             acknowledged {last_acked} and can have had only one more in flight"
        );
        unacked += usize::from(stored > *last_acked);
        *known_seq = stored;
    }

    // The clock: at or after everything acknowledged, and a new commit above it.
    let visible = db.visible_ts();
    assert!(
        visible >= acked.newest_ts && visible >= known.last_ts,
        "round {round}: the recovered clock {visible} is behind an acknowledged commit ({}) or \
         this process's last commit ({})",
        acked.newest_ts,
        known.last_ts
    );
    let mut t = db.start_transaction();
    write(&mut t, PROBE_KEY, int(round));
    let probe = commit(t);
    assert!(
        probe.commit_ts > visible && probe.commit_ts > acked.newest_ts,
        "round {round}: a commit after recovery got {} (visible {visible}, newest ack {})",
        probe.commit_ts,
        acked.newest_ts
    );
    known.last_ts = probe.commit_ts;
    known.probe = Some(int(round));
    unacked
}

fn run(test: &str, adapter: Adapter, default_rounds: usize) {
    let seed = seed(test);
    let rounds = rounds(default_rounds);
    eprintln!(
        "{test}: {rounds} rounds (KHONSU_CRASH_ROUNDS), {THREADS} threads, {ACCOUNTS} accounts"
    );
    let mut rng = Rng::new(seed);
    let dir = must(tempfile::tempdir(), "creating a temporary directory");
    let mut known = Known::default();
    let mut summary = Summary::default();
    for round in 0..rounds {
        let kill = Kill::draw(&mut rng);
        let ran = run_child(round, kill, dir.path(), adapter, rng.next_u64());
        let acked = check_acks(round, &ran.acks, &known);
        summary.durable_unacked +=
            recover_and_check(round, kill, dir.path(), adapter, &acked, &mut known);
        summary.acks.push(ran.acks.len());
        summary.before_ready += usize::from(!ran.ready);
        summary.without_acks += usize::from(ran.acks.is_empty());
    }
    let mut sorted = summary.acks.clone();
    sorted.sort_unstable();
    eprintln!(
        "{test}: {rounds} rounds, {} acknowledged commits (per round min {} / median {} / max \
         {}), {} rounds without acks ({} killed before ready), {} commits durable but not yet \
         acknowledged when killed, {} transfers stored; acks per round: {:?}",
        sorted.iter().sum::<usize>(),
        sorted.first().copied().unwrap_or(0),
        sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        sorted.last().copied().unwrap_or(0),
        summary.without_acks,
        summary.before_ready,
        summary.durable_unacked,
        known.seqs.iter().sum::<i64>(),
        summary.acks
    );
}

/// A kill while the store is being created (the first open of an empty directory) leaves a
/// directory that opens: either no store yet, a store without the bank, or the whole bank;
/// opening it again creates or recovers it.
fn creation_survives_kill_9(test: &str, adapter: Adapter) {
    const TRIALS: usize = 24;
    let mut rng = Rng::new(seed(test));
    let exe = Path::new(env!("CARGO_BIN_EXE_crash-child"));
    let (mut empty, mut bank_only, mut ready) = (0, 0, 0);
    for trial in 0..TRIALS {
        let tmp = must(tempfile::tempdir(), "creating a temporary directory");
        let dir = tmp.path().join("store");
        let mut child = must(
            CrashChild::spawn(exe, &dir, adapter, rng.next_u64(), THREADS, ACCOUNTS),
            "starting crash-child",
        );
        let delay = Duration::from_micros(rng.below(12_000));
        child.pump_for(delay);
        let ran = must(child.kill(), "killing crash-child");
        assert!(
            ran.was_killed(),
            "trial {trial}: the child ended on its own:\n{}",
            ran.stderr
        );
        let db = adapter.open(&dir).unwrap_or_else(|e| {
            panic!(
                "trial {trial}: killed {delay:?} after starting (ready: {}), the directory does \
                 not open:\n{}",
                ran.ready,
                report(&e)
            )
        });
        let recovered = must(state(&db), "reading the recovered store");
        let bank = check_bank(&recovered, ACCOUNTS)
            .unwrap_or_else(|v| panic!("trial {trial}: a partly created bank: {v}"));
        assert!(
            bank.created || !ran.ready,
            "trial {trial}: the child was ready but the bank is gone"
        );
        for ack in &ran.acks {
            assert!(
                bank.seq(ack.thread) >= ack.seq,
                "trial {trial}: {ack:?} is lost"
            );
        }
        if ran.ready {
            ready += 1;
        } else if bank.created {
            bank_only += 1;
        } else {
            empty += 1;
        }
    }
    eprintln!(
        "{test}: {TRIALS} kills: {empty} before the bank was stored, {bank_only} after the bank \
         was stored but before ready, {ready} after ready"
    );
}

/// Found by this test: a kill during redb's creation of `data.redb` (a few ms after the first
/// start) left the file without its header and no manifest, and every later open refused it
/// ("not a redb database: magic number mismatch"). The file is built as `data.redb.tmp` and
/// renamed into place now.
#[test]
fn redb_creation_survives_kill_9() {
    creation_survives_kill_9("redb_creation_survives_kill_9", Adapter::Redb);
}

/// Found by this test: a kill during fjall's creation of its database (`fjall/lock` and the
/// journal written, no `fjall/version` yet) left a directory that every later open refused
/// (fjall: "File exists"). The database is built in `fjall.tmp/` and renamed into place now.
#[cfg(feature = "fjall")]
#[test]
fn fjall_creation_survives_kill_9() {
    creation_survives_kill_9("fjall_creation_survives_kill_9", Adapter::Fjall);
}

#[test]
fn redb_survives_kill_9_mid_commit() {
    run("redb_survives_kill_9_mid_commit", Adapter::Redb, 100);
}

/// Fewer rounds by default than redb: fjall replays its whole journal at every open until a
/// memtable is flushed (64 MiB), so each round's two opens take longer as the rounds
/// accumulate commits; a debug build spends most of the run there.
#[cfg(feature = "fjall")]
#[test]
fn fjall_survives_kill_9_mid_commit() {
    run("fjall_survives_kill_9_mid_commit", Adapter::Fjall, 50);
}
