//! Model test: proptest generates a few concurrent transaction scripts (point reads, writes,
//! deletes, range scans over a small key set), an interleaving of their steps and a per-script
//! commit-or-rollback choice. The schedule runs on Khonsu (one thread, step by step) and the
//! outcome is checked against a `BTreeMap` oracle:
//!
//! * Serializable (precise, the default): some serial order of the committed transactions that
//!   puts every writer before the transactions whose snapshot contains it, replayed, produces
//!   every value each of them read and the final state (the order is searched: at most 4! of
//!   them). Read-only transactions not declared read-only may abort, only with a conflict.
//! * Serializable (conservative): the committed writers, replayed serially in `commit_ts`
//!   order, produce every value each of them read and the final state; every read-only
//!   transaction's reads equal the serial state at its snapshot (`CommitInfo::commit_ts` of a
//!   read-only transaction), and read-only transactions never abort.
//! * `RepeatableRead` (snapshot isolation): every transaction (committed or not) read the state
//!   of the committed writers with `commit_ts <= snapshot_ts`, plus its own writes; the final
//!   state is the committed writes applied in `commit_ts` order; two committed writers that
//!   overlap in time never wrote the same key (first committer wins, `Fail`).
//! * All: only conflicts abort a commit.

use std::collections::BTreeMap;

use khonsu::prelude::*;
use khonsu::{SerializableValidation, Timestamp};
use khonsu_tests::*;
use proptest::prelude::*;

const KEYS: u8 = 5;

#[derive(Clone, Debug)]
enum Op {
    Read(u8),
    Write(u8),
    /// A blind write resolved by `Replace` (lands on a concurrent commit).
    Replace(u8),
    Delete(u8),
    Scan(u8, u8),
}

#[derive(Clone, Debug)]
struct Script {
    ops: Vec<Op>,
    rollback: bool,
    /// Started with `read_only(true)` when it has no writes.
    declared_read_only: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Obs {
    Read(Option<i64>),
    Scan(Vec<(u8, i64)>),
    None,
}

type State = BTreeMap<u8, i64>;

/// A transaction's writes: `None` is a delete.
type WriteSet = BTreeMap<u8, Option<i64>>;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS).prop_map(Op::Read),
        3 => (0..KEYS).prop_map(Op::Write),
        1 => (0..KEYS).prop_map(Op::Replace),
        1 => (0..KEYS).prop_map(Op::Delete),
        2 => (0..KEYS, 0..KEYS).prop_map(|(a, b)| Op::Scan(a.min(b), a.max(b))),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec(op(), 1..=5),
        prop::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(ops, rollback, declared_read_only)| Script {
            ops,
            rollback,
            declared_read_only,
        })
}

/// The value written by op `o` of script `s`: unique, so every read names its writer.
fn written_value(s: usize, o: usize) -> i64 {
    int((s + 1) * 1_000 + o)
}

/// Executes script `s` against `state` with its own writes overlaid; returns what each op
/// observed and the transaction's write set (`None` = delete).
fn replay(s: usize, script: &Script, state: &State) -> (Vec<Obs>, WriteSet) {
    let mut own = WriteSet::new();
    let mut obs = Vec::new();
    for (o, op) in script.ops.iter().enumerate() {
        obs.push(match *op {
            Op::Read(k) => Obs::Read(
                own.get(&k)
                    .copied()
                    .unwrap_or_else(|| state.get(&k).copied()),
            ),
            Op::Write(k) | Op::Replace(k) => {
                own.insert(k, Some(written_value(s, o)));
                Obs::None
            }
            Op::Delete(k) => {
                own.insert(k, None);
                Obs::None
            }
            Op::Scan(lo, hi) => Obs::Scan(
                (lo..=hi)
                    .filter_map(|k| {
                        own.get(&k)
                            .copied()
                            .unwrap_or_else(|| state.get(&k).copied())
                            .map(|v| (k, v))
                    })
                    .collect(),
            ),
        });
    }
    (obs, own)
}

fn apply(state: &mut State, writes: &WriteSet) {
    for (k, v) in writes {
        match v {
            Some(v) => state.insert(*k, *v),
            None => state.remove(k),
        };
    }
}

/// Keys whose last staged write fails on a concurrent commit (not `Replace`).
fn first_committer_keys(script: &Script) -> std::collections::BTreeSet<u8> {
    let mut last = BTreeMap::new();
    for op in &script.ops {
        match *op {
            Op::Write(k) | Op::Delete(k) => last.insert(k, true),
            Op::Replace(k) => last.insert(k, false),
            Op::Read(_) | Op::Scan(..) => None,
        };
    }
    last.into_iter()
        .filter(|&(_, fcw)| fcw)
        .map(|(k, _)| k)
        .collect()
}

fn has_writes(script: &Script) -> bool {
    script
        .ops
        .iter()
        .any(|o| matches!(o, Op::Write(_) | Op::Replace(_) | Op::Delete(_)))
}

/// What happened to one script when run on Khonsu.
#[derive(Debug)]
struct Run {
    /// Position of the script (makes its written values unique).
    idx: usize,
    script: Script,
    snapshot: Timestamp,
    observed: Vec<Obs>,
    /// `Some(info)` if committed.
    committed: Option<CommitInfo>,
}

impl Run {
    fn replay(&self, state: &State) -> (Vec<Obs>, WriteSet) {
        replay(self.idx, &self.script, state)
    }

    /// The commit timestamp, if this run committed writes.
    fn writer_ts(&self) -> Option<Timestamp> {
        self.committed
            .as_ref()
            .filter(|c| !c.read_only)
            .map(|c| c.commit_ts)
    }
}

/// A script in the middle of execution.
struct Slot {
    run: Run,
    txn: Option<Transaction>,
    next: usize,
}

fn decode(k: &Key) -> Result<u8, TestCaseError> {
    let bytes: [u8; 8] = k
        .as_bytes()
        .try_into()
        .map_err(|_| TestCaseError::fail(format!("unexpected key {k:?}")))?;
    u8::try_from(u64::from_be_bytes(bytes))
        .map_err(|_| TestCaseError::fail(format!("unexpected key {k:?}")))
}

/// Performs the next step of `slot`: start + first op, an op, or the final commit/rollback.
fn step(db: &Khonsu, slot: &mut Slot, readers_may_abort: bool) -> Result<(), TestCaseError> {
    let step = slot.next;
    slot.next += 1;
    if step == 0 {
        let declared = slot.run.script.declared_read_only && !has_writes(&slot.run.script);
        let t = db.start_transaction_with(TransactionOptions::new().read_only(declared));
        slot.run.snapshot = t.snapshot_ts();
        slot.txn = Some(t);
    }
    let (idx, writes) = (slot.run.idx, has_writes(&slot.run.script));
    let Some(op) = slot.run.script.ops.get(step).cloned() else {
        let Some(t) = slot.txn.take() else {
            return Err(TestCaseError::fail("script finished twice"));
        };
        if slot.run.script.rollback {
            t.rollback();
            return Ok(());
        }
        match t.commit() {
            Ok(info) => {
                prop_assert_eq!(info.read_only, !writes, "read_only flag of {}", idx);
                slot.run.committed = Some(info);
            }
            Err(e) => {
                let declared = slot.run.script.declared_read_only;
                prop_assert!(
                    writes || (readers_may_abort && !declared),
                    "read-only txn {} aborted: {:?}",
                    idx,
                    e
                );
                prop_assert!(
                    e.is_conflict(),
                    "non-conflict commit error: {}",
                    snafu::Report::from_error(&e)
                );
            }
        }
        return Ok(());
    };
    let Some(t) = slot.txn.as_mut() else {
        return Err(TestCaseError::fail("step without a transaction"));
    };
    let obs = match op {
        Op::Read(k) => Obs::Read(read(t, key(u64::from(k)))),
        Op::Write(k) => {
            write(t, u64::from(k), written_value(idx, step));
            Obs::None
        }
        Op::Replace(k) => {
            ok(
                t.write_with(
                    u64::from(k),
                    batch(written_value(idx, step)),
                    ConflictResolution::Replace,
                ),
                "write_with Replace",
            );
            Obs::None
        }
        Op::Delete(k) => {
            delete(t, u64::from(k));
            Obs::None
        }
        Op::Scan(lo, hi) => Obs::Scan(
            scan(t, key(u64::from(lo))..=key(u64::from(hi)))
                .into_iter()
                .map(|(k, v)| decode(&k).map(|k| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
    };
    slot.run.observed.push(obs);
    Ok(())
}

/// Runs the scripts interleaved as `choices` dictate on a fresh db at `iso`.
fn execute(
    iso: TransactionIsolation,
    validation: SerializableValidation,
    initial: &State,
    scripts: &[Script],
    choices: &[u8],
) -> Result<(Khonsu, Vec<Run>), TestCaseError> {
    let db = match validation {
        SerializableValidation::Conservative => conservative_db(iso, ConflictResolution::Fail),
        SerializableValidation::Precise => db(iso, ConflictResolution::Fail),
    };
    let readers_may_abort =
        iso == TransactionIsolation::Serializable && validation == SerializableValidation::Precise;
    let init: Vec<(u64, i64)> = initial.iter().map(|(k, v)| (u64::from(*k), *v)).collect();
    if !init.is_empty() {
        seed_values(&db, &init);
    }
    let mut slots: Vec<Slot> = scripts
        .iter()
        .enumerate()
        .map(|(idx, script)| Slot {
            run: Run {
                idx,
                script: script.clone(),
                snapshot: 0,
                observed: Vec::new(),
                committed: None,
            },
            txn: None,
            next: 0,
        })
        .collect();
    let mut choice = choices.iter().copied().cycle();
    loop {
        let live: Vec<&mut Slot> = slots
            .iter_mut()
            .filter(|s| s.next <= s.run.script.ops.len())
            .collect();
        if live.is_empty() {
            break;
        }
        let pick = usize::from(choice.next().unwrap_or(0)) % live.len();
        if let Some(slot) = live.into_iter().nth(pick) {
            step(&db, slot, readers_may_abort)?;
        }
    }
    Ok((db, slots.into_iter().map(|s| s.run).collect()))
}

fn final_state(db: &Khonsu) -> Result<State, TestCaseError> {
    committed_all(db)
        .into_iter()
        .map(|(k, v)| decode(&k).map(|k| (k, v)))
        .collect()
}

/// Committed writers in commit order.
fn writers_in_commit_order(runs: &[Run]) -> Vec<&Run> {
    let mut w: Vec<&Run> = runs.iter().filter(|r| r.writer_ts().is_some()).collect();
    w.sort_by_key(|r| r.writer_ts());
    w
}

/// The state after the initial commit and every committed writer with `commit_ts <= ts`.
fn state_at(initial: &State, writers: &[&Run], ts: Timestamp) -> State {
    let mut state = initial.clone();
    for r in writers {
        if r.writer_ts().is_some_and(|c| c <= ts) {
            let (_, write_set) = r.replay(&state);
            apply(&mut state, &write_set);
        }
    }
    state
}

/// Every transaction (even aborted or rolled back ones) read its start snapshot plus its own
/// writes: the state of the committed writers with `commit_ts <= snapshot_ts`.
fn check_snapshot_reads(
    initial: &State,
    runs: &[Run],
    writers: &[&Run],
) -> Result<(), TestCaseError> {
    for r in runs {
        let (obs, _) = r.replay(&state_at(initial, writers, r.snapshot));
        prop_assert_eq!(&r.observed, &obs, "txn {} did not read its snapshot", r.idx);
    }
    Ok(())
}

/// Whether some serial order of the committed runs explains every read and the final state,
/// putting each writer before every run whose snapshot contains it.
fn some_serial_order(initial: &State, runs: &[&Run], last: &State) -> Option<Vec<usize>> {
    fn search(runs: &[&Run], last: &State, order: &mut Vec<usize>, state: &State) -> bool {
        if order.len() == runs.len() {
            return state == last;
        }
        for (i, r) in runs.iter().enumerate() {
            if order.contains(&i) {
                continue;
            }
            // Every writer committed within this run's snapshot must already be placed.
            let waiting = runs.iter().enumerate().any(|(j, w)| {
                j != i && !order.contains(&j) && w.writer_ts().is_some_and(|c| c <= r.snapshot)
            });
            if waiting {
                continue;
            }
            let (obs, write_set) = r.replay(state);
            if obs != r.observed {
                continue;
            }
            let mut next = state.clone();
            apply(&mut next, &write_set);
            order.push(i);
            if search(runs, last, order, &next) {
                return true;
            }
            order.pop();
        }
        false
    }
    let mut order = Vec::new();
    search(runs, last, &mut order, initial).then_some(order)
}

/// Precise `Serializable`: some serial order explains the committed transactions.
fn check_serializable(
    initial: &State,
    scripts: &[Script],
    choices: &[u8],
) -> Result<(), TestCaseError> {
    let (db, runs) = execute(
        TransactionIsolation::Serializable,
        SerializableValidation::Precise,
        initial,
        scripts,
        choices,
    )?;
    let committed: Vec<&Run> = runs.iter().filter(|r| r.committed.is_some()).collect();
    let last = final_state(&db)?;
    prop_assert!(
        some_serial_order(initial, &committed, &last).is_some(),
        "no serial order explains the committed transactions: {:#?}, final state {:?}",
        committed,
        last
    );
    Ok(())
}

/// Conservative `Serializable`: the commit order is a serial order.
fn check_serializable_in_commit_order(
    initial: &State,
    scripts: &[Script],
    choices: &[u8],
) -> Result<(), TestCaseError> {
    let (db, runs) = execute(
        TransactionIsolation::Serializable,
        SerializableValidation::Conservative,
        initial,
        scripts,
        choices,
    )?;
    let writers = writers_in_commit_order(&runs);
    let ts: Vec<Option<Timestamp>> = writers.iter().map(|r| r.writer_ts()).collect();
    prop_assert!(
        ts.windows(2).all(|w| w.first() < w.last()),
        "commit ts not unique: {:?}",
        ts
    );
    check_snapshot_reads(initial, &runs, &writers)?;

    // Serial replay of the writers in commit order.
    let mut state = initial.clone();
    for r in &writers {
        let (obs, write_set) = r.replay(&state);
        prop_assert_eq!(
            &r.observed,
            &obs,
            "writer {} read differently than in the serial order",
            r.idx
        );
        apply(&mut state, &write_set);
    }
    prop_assert_eq!(
        final_state(&db)?,
        state,
        "final state != serial execution in commit order"
    );

    // Read-only transactions read the serial state at their snapshot.
    for r in &runs {
        if let Some(c) = r.committed.as_ref().filter(|c| c.read_only) {
            prop_assert_eq!(
                c.commit_ts,
                r.snapshot,
                "read-only commit_ts is the snapshot"
            );
            let (obs, _) = r.replay(&state_at(initial, &writers, c.commit_ts));
            prop_assert_eq!(
                &r.observed,
                &obs,
                "read-only {} is not consistent with its snapshot",
                r.idx
            );
        }
    }
    Ok(())
}

fn check_snapshot_isolation(
    initial: &State,
    scripts: &[Script],
    choices: &[u8],
) -> Result<(), TestCaseError> {
    let (db, runs) = execute(
        TransactionIsolation::RepeatableRead,
        SerializableValidation::Precise,
        initial,
        scripts,
        choices,
    )?;
    let writers = writers_in_commit_order(&runs);

    check_snapshot_reads(initial, &runs, &writers)?;

    // Final state: committed writes applied in commit order.
    let final_expected = state_at(initial, &writers, Timestamp::MAX);
    prop_assert_eq!(final_state(&db)?, final_expected);

    // First committer wins: overlapping committed writers have disjoint write sets.
    for (pos, a) in writers.iter().enumerate() {
        let a_ts = a.writer_ts().unwrap_or(Timestamp::MAX);
        for b in writers.iter().skip(pos + 1) {
            if b.snapshot < a_ts {
                let (_, wa) = a.replay(initial);
                let (_, wb) = b.replay(initial);
                let (fa, fb) = (
                    first_committer_keys(&a.script),
                    first_committer_keys(&b.script),
                );
                let overlap: Vec<&u8> = wa
                    .keys()
                    .filter(|k| wb.contains_key(k) && fa.contains(k) && fb.contains(k))
                    .collect();
                prop_assert!(
                    overlap.is_empty(),
                    "concurrent writers {} and {} both wrote {:?}",
                    a.idx,
                    b.idx,
                    overlap
                );
            }
        }
    }
    Ok(())
}

/// Cases per property: `KHONSU_MODEL_CASES`, 256 by default (CI).
fn model_cases() -> u32 {
    std::env::var("KHONSU_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn initial_state() -> impl Strategy<Value = State> {
    prop::collection::btree_map(0..KEYS, -100_i64..0, 0..=usize::from(KEYS))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: model_cases(), ..ProptestConfig::default() })]

    #[test]
    fn serializable_has_a_serial_order(
        initial in initial_state(),
        scripts in prop::collection::vec(script(), 2..=4),
        choices in prop::collection::vec(any::<u8>(), 8..40),
    ) {
        check_serializable(&initial, &scripts, &choices)?;
    }

    #[test]
    fn conservative_serializable_matches_serial_commit_order(
        initial in initial_state(),
        scripts in prop::collection::vec(script(), 2..=4),
        choices in prop::collection::vec(any::<u8>(), 8..40),
    ) {
        check_serializable_in_commit_order(&initial, &scripts, &choices)?;
    }

    #[test]
    fn repeatable_read_is_snapshot_isolation(
        initial in initial_state(),
        scripts in prop::collection::vec(script(), 2..=4),
        choices in prop::collection::vec(any::<u8>(), 8..40),
    ) {
        check_snapshot_isolation(&initial, &scripts, &choices)?;
    }
}
