//! CPU clocks read from `/proc` (no `libc`, no `unsafe`).
//!
//! * [`thread_cpu_time`]: the calling thread's on-CPU time, user plus
//!   system, in nanoseconds — the first field of
//!   `/proc/thread-self/schedstat` (the scheduler's `sum_exec_runtime`).
//!   The driver reads it in each worker at the start and end of a
//!   measurement and sums the workers: with nanosecond resolution it is
//!   precise even for 0.1 s measurements.
//! * [`other_threads_cpu_times`]: the on-CPU time of every thread of the
//!   process but the caller, from `/proc/self/task/*/schedstat`. Read
//!   before the workers start and after they are joined, it measures the
//!   engines' own background threads (skipdb runs two watermark threads per
//!   database), which the workers' clocks do not see.
//! * [`process_cpu_time`]: the whole process's user plus system time from
//!   `/proc/self/stat` (fields 14 and 15), in clock ticks of 10 ms. Too
//!   coarse per measurement, it cross-checks the total: the process's CPU
//!   time should be the workers' plus loading, with no hidden threads.
//!
//! Both are `None` where `/proc` does not provide them (not Linux).

use std::time::Duration;

/// Linux's `USER_HZ`, the unit of `/proc/self/stat` times (100 on every
/// mainstream architecture; reading `sysconf(_SC_CLK_TCK)` needs `libc`).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// The calling thread's CPU time so far, from `/proc/thread-self/schedstat`.
#[must_use]
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_schedstat(&text)
}

/// The process's CPU time so far (all threads, live and exited), from
/// `/proc/self/stat`, with a resolution of 10 ms.
#[must_use]
pub fn process_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&text)
}

/// The id of the calling thread, from the `/proc/thread-self` link.
#[must_use]
pub fn current_thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time so far of every live thread of the process except `except`
/// (the caller, typically), by thread id. `None` without `/proc`.
#[must_use]
pub fn other_threads_cpu_times(except: Option<u64>) -> Option<Vec<(u64, Duration)>> {
    let mut times = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if Some(tid) == except {
            continue;
        }
        // A thread may exit between the listing and the read: skip it.
        if let Some(time) = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .as_deref()
            .and_then(parse_schedstat)
        {
            times.push((tid, time));
        }
    }
    Some(times)
}

/// CPU time the threads in `after` spent since `before` (a thread missing
/// from `before` started since, and counts from zero).
#[must_use]
pub fn cpu_time_since(before: &[(u64, Duration)], after: &[(u64, Duration)]) -> Duration {
    after
        .iter()
        .map(|(tid, end)| {
            let start = before
                .iter()
                .find(|(old, _)| old == tid)
                .map_or(Duration::ZERO, |(_, start)| *start);
            end.saturating_sub(start)
        })
        .sum()
}

fn parse_schedstat(text: &str) -> Option<Duration> {
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn parse_stat(text: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // fields are counted after its closing parenthesis, from field 3.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(
        ticks * 1_000 / CLOCK_TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::{parse_schedstat, parse_stat, thread_cpu_time};

    #[test]
    fn parses_proc_formats() {
        assert_eq!(
            parse_schedstat("267517827 4651847 42\n").map(|d| d.as_nanos()),
            Some(267_517_827)
        );
        let stat = "42 (a b) R 1 42 42 0 -1 4194304 100 0 0 0 25 7 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(stat).map(|d| d.as_millis()), Some(320));
    }

    #[test]
    fn thread_clock_advances_when_working() {
        let Some(before) = thread_cpu_time() else {
            return; // no /proc here
        };
        let mut x = 0_u64;
        for i in 0..5_000_000_u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let after = thread_cpu_time().unwrap_or_default();
        assert!(after > before, "{after:?} <= {before:?}");
    }
}
