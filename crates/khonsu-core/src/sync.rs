//! The atomics the commit protocol is written against: `std`'s, or loom's
//! under `cfg(loom)`, so that the loom models (`buffer/loom_tests.rs`) run
//! the real timestamp oracle, state word and snapshot registry through
//! every interleaving and every value a load may return.
//!
//! In a normal build this module is a list of re-exports and costs nothing.
//! Under `cfg(loom)` the atomics and the fence are loom's, and `Backoff` is
//! a stand-in: `crossbeam_utils::Backoff` spins without telling loom, which
//! then cannot switch to the thread being waited for. The stand-in yields
//! to loom's scheduler at every snooze and never reports completion, so the
//! oracle's sleeping path (a `Mutex` and `thread::park`) stays out of the
//! models.

#[cfg(not(loom))]
pub(crate) use crossbeam_utils::Backoff;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use model::Backoff;

#[cfg(loom)]
mod model {
    /// `crossbeam_utils::Backoff` for loom: every snooze yields to loom's
    /// scheduler, and the wait never completes (no sleeping).
    #[derive(Debug, Default)]
    pub(crate) struct Backoff;

    impl Backoff {
        pub(crate) fn new() -> Self {
            Self
        }

        #[expect(
            clippy::unused_self,
            reason = "the same signature as crossbeam's Backoff"
        )]
        pub(crate) fn snooze(&self) {
            loom::thread::yield_now();
        }

        #[expect(
            clippy::unused_self,
            reason = "the same signature as crossbeam's Backoff"
        )]
        pub(crate) fn is_completed(&self) -> bool {
            false
        }
    }
}
