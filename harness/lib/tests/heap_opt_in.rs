//! A program that installs the counting allocator gets heap figures that
//! follow its allocations. (The other side, a program that keeps its own
//! allocator and gets no figures, is the harness's unit test in `alloc.rs`:
//! one program has one global allocator.)

debuglab_harness::install_counting_allocator!();

use debuglab_harness::alloc::{heap_counter, live_heap_bytes};

const BLOCK: usize = 64 << 20;
/// Other tests of this program may allocate meanwhile; a few MiB of slack.
const SLACK: usize = 4 << 20;

#[test]
fn an_installed_counter_sees_a_large_allocation_and_its_release() {
    let before = live_heap_bytes().expect("this program installed the counting allocator");
    let block = std::hint::black_box(vec![1u8; BLOCK]);
    let during = live_heap_bytes().unwrap();
    drop(block);
    let after = live_heap_bytes().unwrap();
    assert!(
        during >= before + BLOCK - SLACK,
        "before {before}, during {during}"
    );
    assert!(
        after + BLOCK - SLACK <= during,
        "during {during}, after {after}"
    );
}

#[test]
fn a_scenario_gets_its_heap_counter() {
    let heap = heap_counter("unbounded-cache").expect("the counter is installed");
    let block = std::hint::black_box(vec![1u8; BLOCK]);
    assert!(heap.live_bytes() >= BLOCK);
    drop(block);
}
