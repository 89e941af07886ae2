#![allow(
    clippy::indexing_slicing,
    reason = "sessions and steps are indexed by positions the spec itself defines"
)]

//! Isolation specs in the manner of `PostgreSQL`'s `src/test/isolation`: sessions of named steps,
//! run over every interleaving of their steps (or listed permutations), each on a fresh
//! database, one step at a time on one thread.
//!
//! For every permutation the harness records what each session read, which sessions committed,
//! aborted with a conflict, or failed (an application error such as a duplicate insert) and the
//! final state, then decides by brute force whether the committed sessions are serializable:
//! some order of them, placing every session after each one that committed before its first
//! step (its snapshot), replayed serially on a `BTreeMap`, must return every value each session
//! read and end in the final state.
//!
//! An abort is *needed* when the same permutation at `RepeatableRead` (snapshot isolation, no
//! read validation) aborts or fails too, or commits a set that is not serializable; otherwise it
//! is *needless*: committing everything would have been serializable.

use std::collections::BTreeMap;

use khonsu::SerializableValidation;
use khonsu::prelude::*;

use crate::{delete, ok, read, scan_prefix, seed_values, write};

/// What a step sees of the database: the operations the specs are written in.
pub trait Ops {
    /// The value of `key`, if any.
    fn get(&mut self, key: &str) -> Option<i64>;
    /// Every key starting with `prefix` and its value, in key order.
    fn scan(&mut self, prefix: &str) -> Vec<(String, i64)>;
    /// Writes `value` under `key`.
    fn put(&mut self, key: &str, value: i64);
    /// Deletes `key`.
    fn del(&mut self, key: &str);
}

/// A step's body: `Err` is an application error (the session then rolls back).
pub type StepFn = fn(&mut dyn Ops) -> Result<(), String>;

/// One named step of a session; `run: None` is the session's commit.
#[derive(Clone, Copy)]
pub struct Step {
    /// The step's name in the permutations.
    pub name: &'static str,
    /// The body, or `None` for `COMMIT`.
    pub run: Option<StepFn>,
}

/// A step with a body.
#[must_use]
pub fn step(name: &'static str, run: StepFn) -> Step {
    Step {
        name,
        run: Some(run),
    }
}

/// The commit step.
#[must_use]
pub fn commit_step(name: &'static str) -> Step {
    Step { name, run: None }
}

/// A session: its steps, its isolation level and whether it declares itself read-only.
#[derive(Clone)]
pub struct Session {
    /// Its name.
    pub name: &'static str,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// Isolation level of its transaction.
    pub isolation: TransactionIsolation,
    /// Whether it starts with `read_only(true)`.
    pub read_only: bool,
}

/// A session at `Serializable`, not declared read-only.
#[must_use]
pub fn session(name: &'static str, steps: Vec<Step>) -> Session {
    Session {
        name,
        steps,
        isolation: TransactionIsolation::Serializable,
        read_only: false,
    }
}

/// A spec: initial rows, sessions, and the permutations to run (`None`: every interleaving).
#[derive(Clone)]
pub struct Spec {
    /// Its name.
    pub name: &'static str,
    /// The rows the setup inserts.
    pub setup: Vec<(&'static str, i64)>,
    /// The sessions.
    pub sessions: Vec<Session>,
    /// Listed permutations (step names), or every interleaving.
    pub permutations: Option<Vec<Vec<&'static str>>>,
}

/// How one session ended in one permutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Committed,
    /// Its commit failed with a conflict.
    Aborted,
    /// A step returned an application error; it rolled back.
    Failed,
    /// The permutation never reached its commit; it rolled back.
    Open,
}

/// One read's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obs {
    /// A point read.
    Get(Option<i64>),
    /// A prefix scan.
    Scan(Vec<(String, i64)>),
}

/// Everything one permutation did.
#[derive(Debug)]
pub struct PermutationRun {
    /// The step names, in order.
    pub steps: Vec<&'static str>,
    /// Each session's outcome.
    pub outcomes: Vec<Outcome>,
    /// Each session's reads, in order.
    pub observed: Vec<Vec<Obs>>,
    /// Each session's steps, in the order it ran them.
    pub ran: Vec<Vec<StepFn>>,
    /// Position in the permutation of each session's first step and of its commit.
    pub first: Vec<Option<usize>>,
    /// Position of the commit, for sessions that committed.
    pub committed_at: Vec<Option<usize>>,
    /// Whether each committed session wrote something.
    pub wrote: Vec<bool>,
    /// Every key and value at the end.
    pub last: BTreeMap<String, i64>,
    /// The first conflict's message, for reports.
    pub conflict: Option<String>,
}

impl PermutationRun {
    /// Whether any session aborted with a conflict.
    #[must_use]
    pub fn aborted(&self) -> bool {
        self.outcomes.contains(&Outcome::Aborted)
    }

    /// Whether any session aborted or failed.
    #[must_use]
    pub fn aborted_or_failed(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Aborted | Outcome::Failed))
    }
}

/// Every interleaving of sessions with `lens` steps, as session indexes.
#[must_use]
pub fn interleavings(lens: &[usize]) -> Vec<Vec<usize>> {
    fn go(left: &mut [usize], prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left.iter().all(|&n| n == 0) {
            out.push(prefix.clone());
            return;
        }
        for s in 0..left.len() {
            if left[s] > 0 {
                left[s] -= 1;
                prefix.push(s);
                go(left, prefix, out);
                prefix.pop();
                left[s] += 1;
            }
        }
    }
    let mut out = Vec::new();
    go(&mut lens.to_vec(), &mut Vec::new(), &mut out);
    out
}

impl Spec {
    /// The permutations, as step names.
    ///
    /// # Panics
    /// If a listed step name is unknown.
    #[must_use]
    pub fn permutations(&self) -> Vec<Vec<&'static str>> {
        if let Some(listed) = &self.permutations {
            return listed.clone();
        }
        let lens: Vec<usize> = self.sessions.iter().map(|s| s.steps.len()).collect();
        interleavings(&lens)
            .into_iter()
            .map(|order| {
                let mut next = vec![0; self.sessions.len()];
                order
                    .into_iter()
                    .map(|s| {
                        let name = self.sessions[s].steps[next[s]].name;
                        next[s] += 1;
                        name
                    })
                    .collect()
            })
            .collect()
    }

    fn find(&self, name: &str) -> (usize, Step) {
        for (s, session) in self.sessions.iter().enumerate() {
            if let Some(step) = session.steps.iter().find(|st| st.name == name) {
                return (s, *step);
            }
        }
        panic!("{}: no step {name}", self.name);
    }

    /// Runs one permutation on a fresh database with `validation`; `level` overrides every
    /// session's isolation when given.
    ///
    /// # Panics
    /// On an engine error that is not a conflict.
    #[must_use]
    pub fn run(
        &self,
        steps: &[&'static str],
        validation: SerializableValidation,
        level: Option<TransactionIsolation>,
    ) -> PermutationRun {
        let db = ok(
            Khonsu::builder()
                .serializable_validation(validation)
                .build(),
            "build",
        );
        if !self.setup.is_empty() {
            seed_values(&db, &self.setup);
        }
        let n = self.sessions.len();
        let mut txns: Vec<Option<Transaction>> = (0..n).map(|_| None).collect();
        let mut run = PermutationRun {
            steps: steps.to_vec(),
            outcomes: vec![Outcome::Open; n],
            observed: vec![Vec::new(); n],
            ran: vec![Vec::new(); n],
            first: vec![None; n],
            committed_at: vec![None; n],
            wrote: vec![false; n],
            last: BTreeMap::new(),
            conflict: None,
        };
        for (pos, name) in steps.iter().enumerate() {
            let (s, step) = self.find(name);
            if run.outcomes[s] != Outcome::Open {
                continue; // rolled back earlier: its remaining steps do nothing
            }
            if txns[s].is_none() {
                let session = &self.sessions[s];
                let mut options =
                    TransactionOptions::new().isolation(level.unwrap_or(session.isolation));
                if session.read_only {
                    options = options.read_only(true);
                }
                txns[s] = Some(db.start_transaction_with(options));
                run.first[s] = Some(pos);
            }
            if let Some(body) = step.run {
                let Some(txn) = txns[s].as_mut() else {
                    unreachable!("started above")
                };
                let mut ops = Live {
                    txn,
                    observed: &mut run.observed[s],
                    wrote: false,
                };
                let result = body(&mut ops);
                run.wrote[s] |= ops.wrote;
                run.ran[s].push(body);
                if result.is_err() {
                    run.outcomes[s] = Outcome::Failed;
                    txns[s] = None;
                }
            } else {
                let Some(txn) = txns[s].take() else {
                    unreachable!("started above")
                };
                match txn.commit() {
                    Ok(_) => {
                        run.outcomes[s] = Outcome::Committed;
                        run.committed_at[s] = Some(pos);
                    }
                    Err(e) => {
                        assert!(
                            e.is_conflict(),
                            "{}: {steps:?}: not a conflict: {}",
                            self.name,
                            snafu::Report::from_error(&e)
                        );
                        run.outcomes[s] = Outcome::Aborted;
                        run.conflict
                            .get_or_insert_with(|| format!("{}: {e}", self.sessions[s].name));
                    }
                }
            }
        }
        drop(txns);
        let mut t = db.start_transaction();
        run.last = Live {
            txn: &mut t,
            observed: &mut Vec::new(),
            wrote: false,
        }
        .scan("")
        .into_iter()
        .collect();
        run
    }
}

/// The steps of a live transaction.
struct Live<'a> {
    txn: &'a mut Transaction,
    observed: &'a mut Vec<Obs>,
    wrote: bool,
}

impl Ops for Live<'_> {
    fn get(&mut self, key: &str) -> Option<i64> {
        let v = read(self.txn, key);
        self.observed.push(Obs::Get(v));
        v
    }

    fn scan(&mut self, prefix: &str) -> Vec<(String, i64)> {
        let rows: Vec<(String, i64)> = scan_prefix(self.txn, prefix)
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(k.as_bytes()).into_owned(), v))
            .collect();
        self.observed.push(Obs::Scan(rows.clone()));
        rows
    }

    fn put(&mut self, key: &str, value: i64) {
        self.wrote = true;
        write(self.txn, key, value);
    }

    fn del(&mut self, key: &str) {
        self.wrote = true;
        delete(self.txn, key);
    }
}

/// Serial replay on a map.
struct Replay<'a> {
    state: &'a mut BTreeMap<String, i64>,
    observed: Vec<Obs>,
}

impl Ops for Replay<'_> {
    fn get(&mut self, key: &str) -> Option<i64> {
        let v = self.state.get(key).copied();
        self.observed.push(Obs::Get(v));
        v
    }

    fn scan(&mut self, prefix: &str) -> Vec<(String, i64)> {
        let rows: Vec<(String, i64)> = self
            .state
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.observed.push(Obs::Scan(rows.clone()));
        rows
    }

    fn put(&mut self, key: &str, value: i64) {
        self.state.insert(key.to_owned(), value);
    }

    fn del(&mut self, key: &str) {
        self.state.remove(key);
    }
}

/// A serial order of the committed sessions of `run` that explains it (module docs), if one
/// exists.
#[must_use]
pub fn serial_order(spec: &Spec, run: &PermutationRun) -> Option<Vec<usize>> {
    let committed: Vec<usize> = (0..spec.sessions.len())
        .filter(|&s| run.outcomes[s] == Outcome::Committed)
        .collect();
    let initial: BTreeMap<String, i64> = spec
        .setup
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    let mut order = Vec::new();
    search(run, &committed, &mut order, &initial).then_some(order)
}

fn search(
    run: &PermutationRun,
    committed: &[usize],
    order: &mut Vec<usize>,
    state: &BTreeMap<String, i64>,
) -> bool {
    if order.len() == committed.len() {
        return *state == run.last;
    }
    for &s in committed {
        if order.contains(&s) {
            continue;
        }
        // A writer that committed before this session's first step must come first.
        let must_wait = committed.iter().any(|&w| {
            w != s && !order.contains(&w) && run.wrote[w] && run.committed_at[w] < run.first[s]
        });
        if must_wait {
            continue;
        }
        let mut next = state.clone();
        let mut replay = Replay {
            state: &mut next,
            observed: Vec::new(),
        };
        let replays = run.ran[s].iter().all(|body| body(&mut replay).is_ok());
        if !replays || replay.observed != run.observed[s] {
            continue;
        }
        order.push(s);
        if search(run, committed, order, &next) {
            return true;
        }
        order.pop();
    }
    false
}

/// One spec's counts over all its permutations.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Permutations run.
    pub permutations: usize,
    /// Permutations in which a session aborted with a conflict.
    pub aborted: usize,
    /// Of those, the ones where snapshot isolation would have committed a serializable set
    /// (the abort was not needed).
    pub needless: usize,
    /// Permutations that need an abort (or an application error): snapshot isolation aborts,
    /// fails, or commits a set that is not serializable.
    pub needed: usize,
    /// Permutations with an application error (a duplicate insert).
    pub failed: usize,
}

/// Whether permutation `steps` needs an abort: under snapshot isolation it aborts, fails, or
/// commits a set no serial order explains.
#[must_use]
pub fn needs_abort(spec: &Spec, steps: &[&'static str]) -> bool {
    let si = spec.run(
        steps,
        SerializableValidation::Precise,
        Some(TransactionIsolation::RepeatableRead),
    );
    si.aborted_or_failed() || serial_order(spec, &si).is_none()
}

/// Runs every permutation of `spec` with `validation`, asserting that each committed set is
/// serializable (for specs whose sessions are all `Serializable`), and counts aborts.
///
/// # Panics
/// When a permutation commits a set no serial order explains.
#[must_use]
pub fn tally(spec: &Spec, validation: SerializableValidation) -> (Tally, Vec<PermutationRun>) {
    let serializable = spec
        .sessions
        .iter()
        .all(|s| s.isolation == TransactionIsolation::Serializable);
    let mut tally = Tally::default();
    let mut runs = Vec::new();
    for steps in spec.permutations() {
        let run = spec.run(&steps, validation, None);
        if serializable {
            assert!(
                serial_order(spec, &run).is_some(),
                "{} ({validation}): permutation {steps:?} committed a set that is not serializable: {run:#?}",
                spec.name
            );
        }
        tally.permutations += 1;
        let needed = needs_abort(spec, &steps);
        tally.needed += usize::from(needed);
        tally.failed += usize::from(run.outcomes.contains(&Outcome::Failed));
        if run.aborted() {
            tally.aborted += 1;
            tally.needless += usize::from(!needed);
        }
        runs.push(run);
    }
    (tally, runs)
}
