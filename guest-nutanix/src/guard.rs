//! The deletion guard (option `deletion_guard`): no false deletions.
//!
//! CloudForet marks a cloud service DELETED when three successful runs
//! missed it, so a kind that silently comes back much smaller (a page
//! Prism lost without saying so, a wrong filter) would delete real assets.
//! After each collection the guard compares every collected kind's count
//! with its count after the last successful collection of the same scope,
//! kept in the collector's `state` (the host namespaces it per tenant and
//! collector; keys per Prism endpoint, kind and task regions):
//!
//! - no count yet (the first run, or a new scope): nothing to compare;
//!   the count is kept;
//! - a drop by more than `max_drop` (a share), or to zero: an error
//!   resource of the kind's type says so, which makes CloudForet's run a
//!   FAILURE, and a failed run deletes nothing; the kept count stays, so
//!   the next run is judged against the same one. A real drop that large
//!   is confirmed by running once with a larger `max_drop` (or `false`);
//! - otherwise the count is kept, unless the kind had error resources this
//!   run (that run fails anyway and its count proves nothing).
//!
//! Scopes: a task limited to some kinds judges only those (the others keep
//! their counts), and a task limited to region codes has counts of its own
//! (`@` + a hash of the codes), so a narrower task never looks like a drop.
//! Incremental runs (option `incremental`) emit every VM, changed or
//! cached, so their counts compare with full runs' as they are.

use crate::config::DeletionGuard;
use crate::emission::Emitter;
use crate::normalize::group_and_type;
use crate::prism::Log;
use crate::v3::Kind;
use crate::{Level, Sink, State};
use serde_json::{json, Value};

/// What the guard makes of one kind's count.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No earlier count to compare with.
    First,
    Kept,
    /// Dropped by more than allowed: (the kept count, the share lost).
    Dropped { last: u64, share: f64 },
}

/// Judges a count against the last successful one (pure).
pub fn judge(last: Option<u64>, now: u64, max_drop: f64) -> Verdict {
    let Some(last) = last else { return Verdict::First };
    if last == 0 || now >= last {
        return Verdict::Kept;
    }
    let share = (last - now) as f64 / last as f64;
    if now == 0 || share > max_drop { Verdict::Dropped { last, share } } else { Verdict::Kept }
}

/// The state key of a kind's count for an endpoint and a task's regions.
pub fn key(base_url: &str, kind: Kind, regions: Option<&[String]>) -> String {
    let mut k = format!("deletion-guard/{:016x}/{}", crate::incremental::fnv1a(base_url.as_bytes()), kind.plural());
    if let Some(regions) = regions {
        let mut sorted: Vec<&str> = regions.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        k.push_str(&format!("@{:016x}", crate::incremental::fnv1a(sorted.join("\n").as_bytes())));
    }
    k
}

/// Judges each of `kinds` after a collection: error resources for the
/// kinds that dropped, new counts for the others.
pub fn check<S: Sink>(state: &mut dyn State, out: &mut Emitter<'_, S>, guard: DeletionGuard, base_url: &str, kinds: &[Kind]) {
    if out.stopped {
        return;
    }
    let regions = out.regions.clone();
    for &kind in kinds {
        let ty = group_and_type(kind).1;
        let now = out.services_of(ty);
        let key = key(base_url, kind, regions.as_deref());
        let last = match state.get(&key) {
            Ok(v) => v.and_then(|text| serde_json::from_str::<Value>(&text).ok()).and_then(|v| v.get("count").and_then(Value::as_u64)),
            Err(e) => {
                out.log(Level::Warn, "deletion guard: count not read", &[("kind", kind.plural()), ("error", &e)]);
                None
            }
        };
        match judge(last, now, guard.max_drop) {
            Verdict::Dropped { last, share } => {
                let why = if now == 0 { "none".to_string() } else { format!("{:.0}% fewer", share * 100.0) };
                out.push_error(
                    kind,
                    format!(
                        "deletion guard: {} {} listed, {last} after the last successful collection ({why}, more than the {:.0}% option deletion_guard.max_drop allows): reported as an error so that nothing is deleted this run; if the drop is real, collect once with a larger max_drop",
                        now,
                        kind.plural(),
                        guard.max_drop * 100.0
                    ),
                );
            }
            Verdict::First | Verdict::Kept if out.errors_of(ty) == 0 => {
                if let Err(e) = state.set(&key, &json!({"count": now}).to_string()) {
                    out.log(Level::Warn, "deletion guard: count not kept", &[("kind", kind.plural()), ("error", &e)]);
                }
            }
            Verdict::First | Verdict::Kept => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_beyond_the_share_or_to_zero_are_caught() {
        assert_eq!(judge(None, 0, 0.5), Verdict::First);
        assert_eq!(judge(Some(12), 12, 0.5), Verdict::Kept);
        assert_eq!(judge(Some(12), 20, 0.5), Verdict::Kept);
        assert_eq!(judge(Some(12), 6, 0.5), Verdict::Kept, "exactly the share is allowed");
        assert_eq!(judge(Some(12), 5, 0.5), Verdict::Dropped { last: 12, share: 7.0 / 12.0 });
        assert_eq!(judge(Some(1), 0, 1.0), Verdict::Dropped { last: 1, share: 1.0 }, "to zero, whatever the share");
        assert_eq!(judge(Some(0), 0, 0.0), Verdict::Kept);
        assert_eq!(judge(Some(10), 9, 0.0), Verdict::Dropped { last: 10, share: 0.1 });
    }

    #[test]
    fn keys_differ_per_endpoint_kind_and_regions_not_their_order() {
        let a = key("https://pc-a:9440", Kind::Vm, None);
        assert_ne!(a, key("https://pc-b:9440", Kind::Vm, None));
        assert_ne!(a, key("https://pc-a:9440", Kind::Host, None));
        let r1 = key("https://pc-a:9440", Kind::Vm, Some(&["c1".into(), "c2".into()]));
        assert_ne!(a, r1);
        assert_eq!(r1, key("https://pc-a:9440", Kind::Vm, Some(&["c2".into(), "c1".into(), "c1".into()])));
        assert!(r1.len() < 80, "{r1}");
    }
}
