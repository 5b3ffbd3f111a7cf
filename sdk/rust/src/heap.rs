//! The component's allocator: free lists per size class in front of a
//! general allocator (`talc` in the component), as glibc's tcache sits in
//! front of `malloc`.
//!
//! A collection allocates and frees millions of small blocks (entity
//! fields, JSON tree nodes, record strings), almost all under 512 bytes.
//! In the component every one went through talc's binning and coalescing,
//! a fifth of the guest's time on a VM list (BENCHMARKS.md); natively,
//! glibc's `malloc` is slower still on this pattern (its per-thread cache
//! holds a few blocks per size, the rest goes through its bins). Here a
//! small block is popped from, and pushed back onto, the free list of its
//! class:
//!
//! - classes are multiples of 16 bytes up to 512, for alignments up to 16;
//!   anything larger or more aligned goes to the backing allocator;
//! - a class with an empty list carves its block from a 64 KiB chunk of the
//!   backing allocator;
//! - freed small blocks stay on their list for reuse and are never given
//!   back, which suits a component instance that lives for one call.
//!
//! Not thread-safe: it is `Sync` only on single-threaded wasm. Native code
//! uses it from one thread (the tests) or one per thread (the
//! `normalize-size-classes` bench).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Size class granularity and the alignment every small block has.
const GRAIN: usize = 16;
const CLASSES: usize = 32;
/// Largest size served from the free lists.
pub const MAX_SMALL: usize = GRAIN * CLASSES;
/// What a class with an empty list takes from the backing allocator.
const CHUNK: usize = 64 * 1024;

pub struct SizeClasses<A> {
    backing: A,
    lists: UnsafeCell<Lists>,
}

struct Lists {
    /// Head of each class's free list; a free block holds the next pointer.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    next: *mut u8,
    end: *mut u8,
}

// SAFETY: wasm32 without the `atomics` feature has one thread, so the
// lists are never touched concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SizeClasses<A> {}

impl<A> SizeClasses<A> {
    pub const fn new(backing: A) -> SizeClasses<A> {
        SizeClasses { backing, lists: UnsafeCell::new(Lists { free: [ptr::null_mut(); CLASSES], next: ptr::null_mut(), end: ptr::null_mut() }) }
    }
}

/// The size class serving `layout`, if it is small.
fn class(layout: Layout) -> Option<usize> {
    (layout.align() <= GRAIN && layout.size() <= MAX_SMALL).then(|| layout.size().max(1).div_ceil(GRAIN) - 1)
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClasses<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: one thread (see the `Sync` impl), and the backing
        // allocator never calls back into this one, so this is the only
        // reference to the lists while it lives.
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.free[c];
        if !head.is_null() {
            // SAFETY: a block on a free list is 16-aligned, at least 16
            // bytes, and holds the next pointer written by `dealloc`.
            lists.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = (c + 1) * GRAIN;
        if lists.end.addr() - lists.next.addr() < size {
            // SAFETY: CHUNK and GRAIN make a valid, non-zero layout.
            let chunk = unsafe { self.backing.alloc(Layout::from_size_align_unchecked(CHUNK, GRAIN)) };
            if chunk.is_null() {
                return ptr::null_mut();
            }
            lists.next = chunk;
            // SAFETY: one past the end of the chunk just allocated.
            lists.end = unsafe { chunk.add(CHUNK) };
        }
        let block = lists.next;
        // SAFETY: `size` bytes remain in the chunk (checked above).
        lists.next = unsafe { block.add(size) };
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(layout).is_none() {
            // SAFETY: the caller's contract, passed on (the backing allocator
            // knows when its memory is fresh and already zero).
            return unsafe { self.backing.alloc_zeroed(layout) };
        }
        // SAFETY: a small block of at least `layout.size()` bytes, or null.
        unsafe {
            let block = self.alloc(layout);
            if !block.is_null() {
                block.write_bytes(0, layout.size());
            }
            block
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: the caller's contract, passed on; `alloc` gave large
            // layouts to the backing allocator too.
            None => unsafe { self.backing.dealloc(block, layout) },
            Some(c) => {
                // SAFETY: as in `alloc`; the block came from this class (same
                // layout), so it is 16-aligned and can hold a pointer.
                let lists = unsafe { &mut *self.lists.get() };
                unsafe { block.cast::<*mut u8>().write(lists.free[c]) };
                lists.free[c] = block;
            }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            // SAFETY: the caller's contract, passed on.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            (Some(a), Some(b)) if a == b => block,
            _ => {
                // SAFETY: a fresh block of the new layout; the old one is
                // valid for `layout.size()` bytes and freed after the copy.
                unsafe {
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::collections::BTreeMap;

    struct Live {
        layout: Layout,
        fill: u8,
    }

    /// Checks a block still holds its fill byte.
    unsafe fn intact(p: *mut u8, live: &Live) -> bool {
        (0..live.layout.size()).all(|i| unsafe { *p.add(i) } == live.fill)
    }

    /// Random allocations, frees and reallocations of every size and
    /// alignment class: blocks are aligned, never overlap, and keep their
    /// contents (realloc keeps the common prefix).
    #[test]
    fn blocks_are_aligned_disjoint_and_keep_their_contents() {
        let heap = SizeClasses::new(System);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut live: BTreeMap<usize, Live> = BTreeMap::new();
        let overlaps = |live: &BTreeMap<usize, Live>, at: usize, size: usize| {
            live.range(..at + size.max(1)).next_back().is_some_and(|(&p, l)| p + l.layout.size().max(1) > at)
        };
        for step in 0..20_000u32 {
            let op = rand(10);
            if op < 5 || live.is_empty() {
                let size = [1, 8, 15, 16, 17, 100, 511, 512, 513, 4000][rand(10)] + rand(3);
                let align = 1 << rand(7);
                let layout = Layout::from_size_align(size, align).unwrap();
                let p = unsafe { heap.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p.addr() % align, 0, "{layout:?}");
                assert!(!overlaps(&live, p.addr(), size), "{layout:?} overlaps a live block");
                let fill = step as u8;
                unsafe { p.write_bytes(fill, size) };
                live.insert(p.expose_provenance(), Live { layout, fill });
            } else {
                let at = *live.keys().nth(rand(live.len())).unwrap();
                let l = live.remove(&at).unwrap();
                let p = ptr::with_exposed_provenance_mut::<u8>(at);
                assert!(unsafe { intact(p, &l) }, "block of {:?} was overwritten", l.layout);
                if op < 8 {
                    unsafe { heap.dealloc(p, l.layout) };
                } else {
                    let new_size = 1 + rand(1200);
                    let q = unsafe { heap.realloc(p, l.layout, new_size) };
                    assert!(!q.is_null());
                    assert_eq!(q.addr() % l.layout.align(), 0);
                    let kept = l.layout.size().min(new_size);
                    assert!((0..kept).all(|i| unsafe { *q.add(i) } == l.fill), "realloc lost the contents");
                    assert!(!overlaps(&live, q.addr(), new_size));
                    unsafe { q.write_bytes(l.fill, new_size) };
                    live.insert(q.expose_provenance(), Live { layout: Layout::from_size_align(new_size, l.layout.align()).unwrap(), fill: l.fill });
                }
            }
        }
        for (at, l) in live {
            let p = ptr::with_exposed_provenance_mut::<u8>(at);
            assert!(unsafe { intact(p, &l) });
            unsafe { heap.dealloc(p, l.layout) };
        }
    }

    /// A freed small block is the next one of its class; realloc within a
    /// class keeps the block; large and over-aligned layouts bypass the
    /// lists.
    #[test]
    fn small_blocks_are_reused_per_class() {
        let heap = SizeClasses::new(System);
        let l24 = Layout::from_size_align(24, 8).unwrap();
        let l32 = Layout::from_size_align(32, 16).unwrap();
        unsafe {
            let a = heap.alloc(l24);
            let b = heap.alloc(l24);
            assert_ne!(a, b);
            heap.dealloc(a, l24);
            assert_eq!(heap.alloc(l32), a, "24 and 32 bytes share the 32-byte class");
            assert_eq!(heap.realloc(b, l24, 30), b, "growing within the class keeps the block");
            let grown = heap.realloc(b, Layout::from_size_align(30, 8).unwrap(), 33);
            assert_ne!(grown, b, "33 bytes need the next class");
            heap.dealloc(grown, Layout::from_size_align(33, 8).unwrap());
            assert_eq!(heap.alloc(Layout::from_size_align(40, 4).unwrap()), grown);
            let l40 = Layout::from_size_align(40, 8).unwrap();
            let dirty = heap.alloc(l40);
            dirty.write_bytes(0xAB, 40);
            heap.dealloc(dirty, l40);
            let zeroed = heap.alloc_zeroed(l40);
            assert_eq!(zeroed, dirty, "the recycled block");
            assert!((0..40).all(|i| *zeroed.add(i) == 0), "alloc_zeroed clears a recycled block");
            let big = Layout::from_size_align(4096, 8).unwrap();
            let fresh = heap.alloc_zeroed(big);
            assert!((0..4096).all(|i| *fresh.add(i) == 0));
            heap.dealloc(fresh, big);
            assert_eq!(class(Layout::from_size_align(MAX_SMALL + 1, 8).unwrap()), None);
            assert_eq!(class(Layout::from_size_align(64, 32).unwrap()), None);
            assert_eq!(class(Layout::from_size_align(0, 1).unwrap()), Some(0));
        }
    }
}
