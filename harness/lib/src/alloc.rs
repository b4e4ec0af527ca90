//! A global allocator that counts live heap bytes, so scenarios can show
//! memory growing (or not) without an external profiler.
//!
//! **Opt-in, per program.** Linking the harness does not change a program's
//! allocator. A program that wants heap figures (the CLI, and the exercise
//! program and test programs of a scenario that judges the heap) installs the
//! counting allocator with one line at its crate root:
//!
//! ```ignore
//! debuglab_harness::install_counting_allocator!();
//! ```
//!
//! In any other program [`live_heap_bytes`] is `None` and [`heap_counter`]
//! an error that says which line is missing, never a silent 0 that a verdict
//! could read as "no growth". Counting costs two relaxed atomic operations
//! per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use crate::error::{HarnessError, Result};

/// The system allocator, counting what it has handed out and not got back.
///
/// Install it with [`install_counting_allocator!`](crate::install_counting_allocator).
pub struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Set by the first allocation made through [`CountingAllocator`]: a
/// program's global allocator allocates long before anyone asks.
static COUNTING: AtomicBool = AtomicBool::new(false);

impl CountingAllocator {
    fn allocated(size: usize) {
        if !COUNTING.load(Ordering::Relaxed) {
            COUNTING.store(true, Ordering::Relaxed);
        }
        LIVE_BYTES.fetch_add(size as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            Self::allocated(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            Self::allocated(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        moved
    }
}

/// Makes [`CountingAllocator`] this program's global allocator, so that
/// [`live_heap_bytes`] has figures to give. Write it once, at the crate root
/// of the program (`main.rs`, or a test file's top level):
///
/// ```ignore
/// debuglab_harness::install_counting_allocator!();
/// ```
#[macro_export]
macro_rules! install_counting_allocator {
    () => {
        #[global_allocator]
        static DEBUGLAB_COUNTING_ALLOCATOR: $crate::alloc::CountingAllocator =
            $crate::alloc::CountingAllocator;
    };
}

/// Bytes currently allocated on the heap by this process; `None` when the
/// program did not install the counting allocator.
pub fn live_heap_bytes() -> Option<usize> {
    COUNTING
        .load(Ordering::Relaxed)
        .then(|| LIVE_BYTES.load(Ordering::Relaxed).max(0) as usize)
}

/// Proof that this program counts its heap: what a scenario that judges the
/// heap takes once, at the start of a run, and reads from after.
#[derive(Clone, Copy, Debug)]
pub struct HeapCounter(());

impl HeapCounter {
    /// Bytes currently allocated on the heap by this process.
    pub fn live_bytes(self) -> usize {
        LIVE_BYTES.load(Ordering::Relaxed).max(0) as usize
    }
}

/// The heap counter for `scenario`'s run, or an error naming the line the
/// program lacks.
pub fn heap_counter(scenario: &str) -> Result<HeapCounter> {
    match live_heap_bytes() {
        Some(_) => Ok(HeapCounter(())),
        None => Err(HarnessError::HeapNotCounted {
            scenario: scenario.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    //! This test program keeps an allocator of its own, as a service linking
    //! the harness would; `tests/heap_opt_in.rs` installs the counting one.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{heap_counter, live_heap_bytes};

    struct OwnAllocator;

    static OWN_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    // SAFETY: forwards to `System` unchanged.
    unsafe impl GlobalAlloc for OwnAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            OWN_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            System.alloc(layout)
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            System.dealloc(pointer, layout)
        }
    }

    #[global_allocator]
    static OWN: OwnAllocator = OwnAllocator;

    #[test]
    fn a_program_that_did_not_opt_in_keeps_its_allocator_and_gets_no_heap_figures() {
        let before = OWN_ALLOCATIONS.load(Ordering::Relaxed);
        let block = std::hint::black_box(vec![1u8; 1 << 20]);
        assert!(OWN_ALLOCATIONS.load(Ordering::Relaxed) > before);
        drop(block);
        assert_eq!(live_heap_bytes(), None);
        let error = heap_counter("listener-leak").unwrap_err().to_string();
        assert!(
            error.contains("debuglab_harness::install_counting_allocator!()"),
            "{error}"
        );
    }
}
