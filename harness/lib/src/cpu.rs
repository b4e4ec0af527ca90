//! CPU time, as the kernel counts it: for a whole process, or for the
//! calling thread. Unlike wall-clock time, it does not grow when a busy
//! machine makes a thread wait for a CPU, so figures built on it (work per
//! request, a calibration measured in the same run) hold on any laptop.

use std::time::Duration;

/// CPU time this process has used so far, all its threads together.
pub fn process_cpu_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time the calling thread spends running `work`, and what it returned.
pub fn measure<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let before = thread_cpu_time();
    let output = work();
    (thread_cpu_time().saturating_sub(before), output)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given; both clocks
    // exist on every Linux.
    let status = unsafe { libc::clock_gettime(id, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computing_costs_cpu_time_and_sleeping_does_not() {
        let (computed, sum) =
            measure(|| (0..20_000_000u64).fold(0u64, |a, b| a.wrapping_add(b ^ a)));
        assert!(sum > 0);
        assert!(computed > Duration::from_millis(1), "{computed:?}");
        let (slept, ()) = measure(|| std::thread::sleep(Duration::from_millis(30)));
        assert!(slept < Duration::from_millis(10), "{slept:?}");
        assert!(process_cpu_time() >= computed);
    }
}
