//! Normalization throughput: the collector compiled natively versus the same
//! code compiled to wasm and run in the real host's sandbox (HTTP through the
//! egress policy, emit checks), on the same pre-rendered Prism v3 pages (no
//! network, no simulator server). Both sides render every record's data and
//! metadata as JSON text, as the component does for the host, count the
//! records and drop them. A third side runs the native collection through
//! the host's record checks (`record::from_item`), as a collector linked
//! into the host would be: what the wasm side costs above it is the
//! sandbox's (the boundary copies and the guest code as wasm).
//! Prints a table; the goal (wasm/native ≤ 1.3×) is recorded in
//! BENCHMARKS.md, never asserted.
//!
//! Native code here allocates with the system allocator (glibc's malloc),
//! as it would linked into `cf-host`; `normalize-size-classes` runs the same
//! benchmark with the guest's own allocator design natively.
//!
//! Needs the component built: `cargo build -p guest-nutanix --target wasm32-wasip2 --release`.

mod run;

fn main() {
    run::run("the system allocator (glibc malloc)");
}
