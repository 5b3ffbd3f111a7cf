//! The `normalize` benchmark with the native code allocating through the
//! guest's own allocator design: `heap::SizeClasses` free lists, one set per
//! thread, in front of the system allocator (the component puts them in
//! front of talc). glibc's `malloc`/`free` are over a third of the native
//! collection's time on this workload, and the component does not pay them,
//! so this is the comparison of the code alone: wasm under the sandbox
//! versus the same code and allocator compiled natively (BENCHMARKS.md).
//!
//! Needs the component built: `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.

#[path = "../normalize/run.rs"]
mod run;

use guest_nutanix::heap::SizeClasses;
use std::alloc::{GlobalAlloc, Layout, System};

thread_local! {
    /// No destructor (const, and `SizeClasses` has no `Drop`): usable
    /// for the whole life of its thread, teardown included.
    static CLASSES: SizeClasses<System> = const { SizeClasses::new(System) };
}

/// Each thread's own `SizeClasses`. A block freed on another thread than
/// the one that allocated it joins that thread's list of the same class:
/// classes are by layout, so it is the same size either way.
struct PerThread;

// SAFETY: each call uses its own thread's lists only (`SizeClasses` is
// single-threaded), and `System` never calls back into this allocator.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        CLASSES.with(|c| unsafe { c.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        CLASSES.with(|c| unsafe { c.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        CLASSES.with(|c| unsafe { c.dealloc(block, layout) })
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        CLASSES.with(|c| unsafe { c.realloc(block, layout, new_size) })
    }
}

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

fn main() {
    run::run("the guest's size classes, per thread, over the system allocator");
}
