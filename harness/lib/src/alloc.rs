//! A global allocator that counts live heap bytes, so scenarios can show
//! memory growing (or not) without an external profiler.
//!
//! It is installed by this crate for every program that links the harness;
//! counting costs two relaxed atomic operations per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting what it has handed out and not got back.
pub struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
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

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Bytes currently allocated on the heap by this process.
pub fn live_heap_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::live_heap_bytes;

    #[test]
    fn counts_a_large_allocation_and_its_release() {
        // Other tests allocate concurrently, so allow for their noise.
        let before = live_heap_bytes();
        let block = vec![1u8; 64 << 20];
        let during = live_heap_bytes();
        drop(block);
        let after = live_heap_bytes();
        assert!(
            during >= before + (60 << 20),
            "before {before}, during {during}"
        );
        assert!(
            after + (60 << 20) <= during,
            "during {during}, after {after}"
        );
    }
}
