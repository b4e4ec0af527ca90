//! A program that installs the counting allocator gets heap figures that
//! follow its allocations. (The other side, a program that keeps its own
//! allocator and gets no figures, is the harness's unit test in `alloc.rs`:
//! one program has one global allocator.)

debuglab_harness::install_counting_allocator!();

use debuglab_harness::alloc::{heap_counter, live_heap_bytes};

const BLOCK: usize = 64 << 20;
/// libtest's own threads may allocate meanwhile; a few MiB of slack.
const SLACK: usize = 4 << 20;

/// The tests take turns: each allocates a block the size the other measures.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn an_installed_counter_sees_a_large_allocation_and_its_release() {
    let _turn = turn();
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
    let _turn = turn();
    let heap = heap_counter("unbounded-cache").expect("the counter is installed");
    let block = std::hint::black_box(vec![1u8; BLOCK]);
    assert!(heap.live_bytes() >= BLOCK);
    drop(block);
}
