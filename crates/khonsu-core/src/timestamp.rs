//! The timestamp oracle: one monotonic clock for commit timestamps and the
//! visibility horizon that makes every commit appear atomically.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::thread::{self, Thread};

use crossbeam_utils::CachePadded;

use crate::error::{Result, TimestampExhaustedSnafu};
use crate::sync::{AtomicU64, AtomicUsize, Backoff, Ordering};

/// A logical commit timestamp. `0` means "before any commit".
pub type Timestamp = u64;

/// The largest timestamp the oracle hands out. The top four bits of a key
/// head's state word are flags, so timestamps stay below `2^60`.
pub const MAX_TIMESTAMP: Timestamp = (1 << 60) - 1;

/// The single source of commit timestamps.
///
/// Two counters, each on its own cache line:
///
/// * `allocated` — the last commit timestamp handed out (`fetch_add`);
/// * `visible` — every commit with a timestamp `<= visible` has finished
///   installing (or given its timestamp back). New snapshots read `visible`.
///
/// A committer takes a [`CommitTicket`], installs its versions, and then
/// [publishes](CommitTicket::publish) the ticket. Tickets publish in
/// timestamp order (a wait on the predecessor), so a snapshot taken at
/// `visible` never sees half of a commit, and a thread that returns from
/// `commit` sees its own writes in its next transaction.
///
/// The wait spins and yields briefly, then sleeps: with durable storage a
/// predecessor may be waiting for a disk sync (hundreds of microseconds),
/// and a yielding loop would take the CPU its storage write needs. A
/// sleeper registers for the one timestamp it waits for, so each publish
/// wakes at most the one thread waiting for it (a chain of `n` sleeping
/// publishers costs `n` wake-ups, not `n²/2`), and a publisher looks at the
/// registry only when someone sleeps (one load of a counter otherwise), so
/// the in-memory path never touches its lock.
///
/// ```
/// use khonsu_core::TimestampOracle;
///
/// let oracle = TimestampOracle::new(0);
/// let ticket = oracle.allocate().unwrap();
/// assert_eq!(ticket.ts(), 1);
/// assert_eq!(oracle.visible(), 0); // not yet visible
/// ticket.publish();
/// assert_eq!(oracle.visible(), 1);
/// ```
#[derive(Debug)]
pub struct TimestampOracle {
    allocated: CachePadded<AtomicU64>,
    visible: CachePadded<AtomicU64>,
    /// Publishers sleeping in [`publish`](Self::publish) on a predecessor.
    sleepers: CachePadded<AtomicUsize>,
    /// The sleeping publishers, by the timestamp each waits for (its
    /// predecessor's): one waiter per timestamp.
    waiting: Mutex<HashMap<Timestamp, Thread>>,
}

impl TimestampOracle {
    /// A clock whose last commit was `start` (the recovered timestamp, or
    /// 0); values above [`MAX_TIMESTAMP`] are clamped to it.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        let start = start.min(MAX_TIMESTAMP);
        Self {
            allocated: CachePadded::new(AtomicU64::new(start)),
            visible: CachePadded::new(AtomicU64::new(start)),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// The newest timestamp whose commit, and every commit before it, is
    /// fully installed: the snapshot a transaction starting now reads at.
    #[must_use]
    #[inline]
    pub fn visible(&self) -> Timestamp {
        self.visible.load(Ordering::SeqCst)
    }

    /// The last timestamp handed out (published or not).
    #[must_use]
    pub fn last_allocated(&self) -> Timestamp {
        self.allocated.load(Ordering::SeqCst)
    }

    /// Hands out the next commit timestamp.
    ///
    /// The ticket must be published (explicitly or by dropping it) whether
    /// the commit succeeds or not, or later commits wait for it.
    ///
    /// # Errors
    /// [`Error::TimestampExhausted`](crate::Error::TimestampExhausted) after
    /// [`MAX_TIMESTAMP`] commits.
    pub fn allocate(&self) -> Result<CommitTicket<'_>> {
        let mut last = self.allocated.load(Ordering::SeqCst);
        loop {
            snafu::ensure!(last < MAX_TIMESTAMP, TimestampExhaustedSnafu { last });
            match self.allocated.compare_exchange_weak(
                last,
                last + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Ok(CommitTicket {
                        oracle: self,
                        ts: last + 1,
                        published: false,
                    });
                }
                Err(current) => last = current,
            }
        }
    }

    fn publish(&self, ts: Timestamp) {
        // Commits become visible in timestamp order: wait until every
        // earlier ticket has published. In memory, predecessors only have
        // their install left to do: `Backoff` spins, then yields the core so
        // a preempted predecessor can finish. A predecessor still waiting
        // for its storage write takes longer: then sleep until woken.
        let backoff = Backoff::new();
        while self.visible.load(Ordering::SeqCst) != ts - 1 {
            if backoff.is_completed() {
                self.sleep_until_visible(ts - 1);
                break;
            }
            backoff.snooze();
        }
        self.visible.store(ts, Ordering::SeqCst);
        // Store `visible` then load `sleepers`, against the sleeper's
        // increment of `sleepers` then load of `visible` (all `SeqCst`):
        // either the sleeper sees our timestamp and does not park, or we see
        // its count and wake it — it registered under the lock before its
        // check, so we find it. An unpark before its park is kept by the
        // thread's park token, so no wake-up is lost.
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            let waiter = self
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&ts);
            if let Some(waiter) = waiter {
                waiter.unpark();
            }
        }
    }

    /// Sleeps until `visible` is at least `ts` (the predecessor published).
    fn sleep_until_visible(&self, ts: Timestamp) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ts, thread::current());
        while self.visible.load(Ordering::SeqCst) < ts {
            // Spurious wake-ups just look again.
            thread::park();
        }
        // The publisher removed the entry if it woke us; remove it if not.
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ts);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A commit timestamp that has been handed out but not yet made visible.
///
/// Dropping an unpublished ticket publishes it, so an aborted or panicking
/// commit never stalls the clock.
#[derive(Debug)]
#[must_use = "a ticket must be published, or later commits stay invisible"]
pub struct CommitTicket<'a> {
    oracle: &'a TimestampOracle,
    ts: Timestamp,
    published: bool,
}

impl CommitTicket<'_> {
    /// The commit timestamp.
    #[must_use]
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// Makes this commit (and everything before it) visible to new snapshots.
    pub fn publish(mut self) {
        self.published = true;
        self.oracle.publish(self.ts);
    }
}

impl Drop for CommitTicket<'_> {
    fn drop(&mut self) {
        if !self.published {
            self.oracle.publish(self.ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_publish_in_order() {
        let oracle = TimestampOracle::new(10);
        std::thread::scope(|s| {
            let first = oracle.allocate().unwrap();
            let second = oracle.allocate().unwrap();
            assert_eq!((first.ts(), second.ts()), (11, 12));
            let later = s.spawn(|| {
                // Blocks until the first ticket is published.
                second.publish();
                oracle.visible()
            });
            // Nothing can become visible before the first ticket publishes.
            assert_eq!(oracle.visible(), 10);
            first.publish();
            assert_eq!(later.join().unwrap(), 12);
        });
        // A dropped ticket publishes too.
        drop(oracle.allocate().unwrap());
        assert_eq!(oracle.visible(), 13);
    }

    /// A chain of publishers, each asleep on its predecessor, all become
    /// visible in order when the first one publishes.
    #[test]
    fn a_chain_of_sleeping_publishers_wakes_in_order() {
        let oracle = TimestampOracle::new(0);
        let tickets: Vec<CommitTicket<'_>> = (0..64).map(|_| oracle.allocate().unwrap()).collect();
        let mut tickets = tickets.into_iter();
        let first = tickets.next().unwrap();
        std::thread::scope(|s| {
            let waiters: Vec<_> = tickets
                .map(|t| {
                    s.spawn(move || {
                        let ts = t.ts();
                        t.publish();
                        ts
                    })
                })
                .collect();
            // Every later ticket is blocked behind the first.
            while oracle.sleepers.load(Ordering::SeqCst) < 63 {
                std::thread::yield_now();
            }
            assert_eq!(oracle.visible(), 0);
            first.publish();
            for w in waiters {
                let ts = w.join().unwrap();
                assert!(oracle.visible() >= ts);
            }
        });
        assert_eq!(oracle.visible(), 64);
        assert_eq!(oracle.sleepers.load(Ordering::SeqCst), 0);
        assert!(oracle.waiting.lock().unwrap().is_empty());
    }

    #[test]
    fn exhausted_clock_is_an_error() {
        let oracle = TimestampOracle::new(MAX_TIMESTAMP);
        assert!(matches!(
            oracle.allocate(),
            Err(crate::Error::TimestampExhausted { .. })
        ));
    }
}
