//! Lists rendered on demand: an entity is a pure function of its index
//! (`render`), and only what changed since the estate was generated is
//! held — entities edited, removed or added, as an overlay. A million-VM
//! estate so costs memory in proportion to its changes, not its size.
//!
//! [`Entities`] is what [`crate::estate::Estate::list`] answers: a stored
//! slice or a [`LazyList`], read by position the same way.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Renders the entity of one index.
pub type Render = Arc<dyn Fn(usize) -> Value + Send + Sync>;

/// Writes the JSON text of one index's entity (the bytes
/// `serde_json::to_vec` gives for what [`Render`] renders), into `out`.
pub type Write = Arc<dyn Fn(usize, &mut Vec<u8>) + Send + Sync>;

/// Category pairs (key, value) with how many entities carry each.
pub type CategoryCounts = BTreeMap<(String, String), usize>;

/// The category pairs of an entity (v3 `metadata.categories`).
pub fn category_pairs_of(e: &Value) -> Vec<(String, String)> {
    match e.pointer("/metadata/categories") {
        Some(Value::Object(c)) => c.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect(),
        _ => Vec::new(),
    }
}

/// A list of `base` generated entities (in index order) with the changes
/// made since: edits, removals and entities added at the end.
pub struct LazyList {
    base: usize,
    render: Render,
    /// Writes a base entity's text without its tree, if the list has a
    /// writer ([`LazyList::with_writer`]).
    write: Option<Write>,
    /// The kind the entities' uuids are made of ([`crate::estate::uuid`]),
    /// so an entity is found from its uuid without a scan.
    uuid_kind: &'static str,
    /// Base indexes removed, ascending.
    removed: Vec<usize>,
    /// Base entities as edited, as JSON text (a tree takes about five
    /// times the memory of its text).
    edited: HashMap<usize, Box<[u8]>>,
    /// Entities added after the base ones, in order: (uuid, JSON text).
    added: Vec<(String, Box<[u8]>)>,
    /// The category pairs the live entities carry, counted.
    categories: CategoryCounts,
}

/// What a list position holds ([`LazyList::source`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source<'a> {
    /// The base entity of this index, as generated.
    Base(usize),
    /// An edited or added entity's JSON text.
    Text(&'a [u8]),
}

/// Where an entity lives in a [`LazyList`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Base(usize),
    Added(usize),
}

impl LazyList {
    /// `categories`: the pairs the `base` rendered entities carry, counted
    /// (computed by the caller from something cheaper than rendering).
    pub fn new(base: usize, uuid_kind: &'static str, render: Render, categories: CategoryCounts) -> LazyList {
        LazyList { base, render, write: None, uuid_kind, removed: Vec::new(), edited: HashMap::new(), added: Vec::new(), categories }
    }

    /// The list with `write` for its base entities' text: what list pages
    /// are made of, [`Render`] staying the definition.
    pub fn with_writer(self, write: Write) -> LazyList {
        LazyList { write: Some(write), ..self }
    }

    pub fn len(&self) -> usize {
        self.base - self.removed.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of list position `pos`.
    fn slot(&self, pos: usize) -> Option<Slot> {
        let base_live = self.base - self.removed.len();
        if pos >= base_live {
            return (pos - base_live < self.added.len()).then_some(Slot::Added(pos - base_live));
        }
        // `removed[k] - k` live entities come before removed[k]; those
        // removed at or before the answer are the ones with `removed[k] - k <= pos`.
        let (mut lo, mut hi) = (0, self.removed.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.removed[mid] - mid <= pos {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(Slot::Base(pos + lo))
    }

    fn at(&self, slot: Slot) -> Value {
        let held = match slot {
            Slot::Base(i) => self.edited.get(&i),
            Slot::Added(k) => self.added.get(k).map(|(_, text)| text),
        };
        match (held, slot) {
            (Some(text), _) => serde_json::from_slice(text).unwrap_or(Value::Null),
            (None, Slot::Base(i)) => (self.render)(i),
            (None, Slot::Added(_)) => Value::Null,
        }
    }

    /// The entity at list position `pos`.
    pub fn get(&self, pos: usize) -> Option<Value> {
        self.slot(pos).map(|s| self.at(s))
    }

    /// The entities at positions `start..end` (clipped to the list).
    pub fn range(&self, start: usize, end: usize) -> Vec<Value> {
        (start..end.min(self.len())).filter_map(|p| self.get(p)).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).filter_map(|p| self.get(p))
    }

    /// What is at list position `pos`: a base entity as generated (its
    /// index), or the text held for an edited or added one.
    pub fn source(&self, pos: usize) -> Option<Source<'_>> {
        Some(match self.slot(pos)? {
            Slot::Base(i) => self.edited.get(&i).map_or(Source::Base(i), |text| Source::Text(text)),
            Slot::Added(k) => Source::Text(self.added.get(k).map(|(_, text)| &text[..])?),
        })
    }

    /// The JSON text of the entity at list position `pos` into `out`:
    /// the edited or added text as held, a base entity through the writer
    /// (or its rendered tree without one); false if there is none.
    pub fn write_at(&self, pos: usize, out: &mut Vec<u8>) -> bool {
        match (self.source(pos), &self.write) {
            (None, _) => return false,
            (Some(Source::Text(text)), _) => out.extend_from_slice(text),
            (Some(Source::Base(i)), Some(write)) => write(i, out),
            (Some(Source::Base(i)), None) => {
                let _ = serde_json::to_writer(&mut *out, &(self.render)(i));
            }
        }
        true
    }

    /// The slot of the entity with `uuid` (`/metadata/uuid`).
    fn locate(&self, uuid: &str) -> Option<Slot> {
        if let Some(i) = index_of(self.uuid_kind, uuid).filter(|i| *i < self.base)
            && self.removed.binary_search(&i).is_err()
        {
            return Some(Slot::Base(i));
        }
        self.added.iter().position(|(id, _)| id == uuid).map(Slot::Added)
    }

    /// The list position of the entity with `uuid`.
    pub fn position(&self, uuid: &str) -> Option<usize> {
        Some(match self.locate(uuid)? {
            Slot::Base(i) => i - self.removed.partition_point(|r| *r < i),
            Slot::Added(k) => self.base - self.removed.len() + k,
        })
    }

    fn count(&mut self, e: &Value, add: bool) {
        for pair in category_pairs_of(e) {
            if add {
                *self.categories.entry(pair).or_default() += 1;
            } else if let Some(n) = self.categories.get_mut(&pair) {
                *n -= 1;
                if *n == 0 {
                    self.categories.remove(&pair);
                }
            }
        }
    }

    fn edit_slot(&mut self, slot: Slot, f: impl FnOnce(&mut Value)) {
        let mut v = self.at(slot);
        self.count(&v, false);
        f(&mut v);
        self.count(&v, true);
        let text = text_of(&v);
        match slot {
            Slot::Base(i) => {
                self.edited.insert(i, text);
            }
            Slot::Added(k) => {
                if let Some(held) = self.added.get_mut(k) {
                    held.1 = text;
                }
            }
        }
    }

    /// Changes the entity at list position `pos`; false if there is none.
    pub fn edit_at(&mut self, pos: usize, f: impl FnOnce(&mut Value)) -> bool {
        let Some(slot) = self.slot(pos) else { return false };
        self.edit_slot(slot, f);
        true
    }

    /// Changes the entity with `uuid`; false if there is none.
    pub fn edit(&mut self, uuid: &str, f: impl FnOnce(&mut Value)) -> bool {
        let Some(slot) = self.locate(uuid) else { return false };
        self.edit_slot(slot, f);
        true
    }

    fn remove_slot(&mut self, slot: Slot) {
        let v = self.at(slot);
        self.count(&v, false);
        match slot {
            Slot::Base(i) => {
                self.edited.remove(&i);
                let at = self.removed.partition_point(|r| *r < i);
                self.removed.insert(at, i);
            }
            Slot::Added(k) => {
                self.added.remove(k);
            }
        }
    }

    /// Removes the entity with `uuid`; false if there is none.
    pub fn remove(&mut self, uuid: &str) -> bool {
        let Some(slot) = self.locate(uuid) else { return false };
        self.remove_slot(slot);
        true
    }

    /// Removes the first `k` entities (all if fewer).
    pub fn remove_front(&mut self, k: usize) {
        for _ in 0..k {
            let Some(slot) = self.slot(0) else { return };
            self.remove_slot(slot);
        }
    }

    /// Adds `e` at the end.
    pub fn push(&mut self, e: Value) {
        self.count(&e, true);
        let uuid = e.pointer("/metadata/uuid").and_then(Value::as_str).unwrap_or_default().to_string();
        self.added.push((uuid, text_of(&e)));
    }

    /// Every category pair the entities carry, in order.
    pub fn category_pairs(&self) -> Vec<(String, String)> {
        self.categories.keys().cloned().collect()
    }

    /// Entities held apart from the rendering (edited and added).
    pub fn overlay_len(&self) -> usize {
        self.edited.len() + self.added.len()
    }
}

fn text_of(e: &Value) -> Box<[u8]> {
    serde_json::to_vec(e).unwrap_or_default().into_boxed_slice()
}

/// The index `i` of a uuid made by [`crate::estate::uuid`]`(kind, i)`, if it is one.
pub fn index_of(kind: &str, uuid: &str) -> Option<usize> {
    let mut groups = uuid.rsplit('-');
    let low = u64::from_str_radix(groups.next()?, 16).ok()?;
    let high = u64::from_str_radix(groups.next()?.get(1..)?, 16).ok()?;
    let i = usize::try_from((high << 48) | low).ok()?;
    (crate::estate::uuid(kind, i) == uuid).then_some(i)
}

/// A list of the estate, stored or rendered on demand.
#[derive(Clone, Copy)]
pub enum Entities<'a> {
    Stored(&'a [Value]),
    Lazy(&'a LazyList),
}

impl<'a> Entities<'a> {
    pub fn len(&self) -> usize {
        match self {
            Entities::Stored(s) => s.len(),
            Entities::Lazy(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, pos: usize) -> Option<Value> {
        match self {
            Entities::Stored(s) => s.get(pos).cloned(),
            Entities::Lazy(l) => l.get(pos),
        }
    }

    /// The entities at positions `start..end` (clipped to the list).
    pub fn range(&self, start: usize, end: usize) -> Vec<Value> {
        match self {
            Entities::Stored(s) => s.get(start.min(s.len())..end.min(s.len())).unwrap_or_default().to_vec(),
            Entities::Lazy(l) => l.range(start, end),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = Value> + 'a> {
        match *self {
            Entities::Stored(s) => Box::new(s.iter().cloned()),
            Entities::Lazy(l) => Box::new(l.iter()),
        }
    }

    pub fn to_vec(&self) -> Vec<Value> {
        self.iter().collect()
    }

    /// The entities at positions `start..end` (clipped to the list) as JSON
    /// text separated by commas, into `out`; how many were written.
    pub fn write_range(&self, start: usize, end: usize, out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        for pos in start..end.min(self.len()) {
            if n > 0 {
                out.push(b',');
            }
            let written = match self {
                Entities::Stored(s) => s.get(pos).is_some_and(|e| serde_json::to_writer(&mut *out, e).is_ok()),
                Entities::Lazy(l) => l.write_at(pos, out),
            };
            if written {
                n += 1;
            } else if n > 0 {
                out.pop();
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(n: usize) -> LazyList {
        let render: Render = Arc::new(|i| json!({"metadata": {"uuid": crate::estate::uuid("t", i), "categories": {"k": format!("v{}", i % 3)}}, "n": i}));
        let mut counts = CategoryCounts::new();
        for i in 0..n {
            *counts.entry(("k".into(), format!("v{}", i % 3))).or_default() += 1;
        }
        LazyList::new(n, "t", render.clone(), counts)
    }

    #[test]
    fn positions_follow_removals_and_additions() {
        let mut l = list(10);
        let mut eager: Vec<Value> = l.iter().collect();
        assert_eq!(eager.len(), 10);
        for i in [0, 4, 5, 9] {
            let id = crate::estate::uuid("t", i);
            assert!(l.remove(&id));
            assert!(!l.remove(&id), "removed once");
            eager.retain(|v| v["metadata"]["uuid"] != id);
        }
        l.push(json!({"metadata": {"uuid": "x"}, "n": 100}));
        eager.push(json!({"metadata": {"uuid": "x"}, "n": 100}));
        assert!(l.edit(&crate::estate::uuid("t", 6), |v| v["n"] = json!(-6)));
        eager.iter_mut().find(|v| v["n"] == 6).unwrap()["n"] = json!(-6);
        assert_eq!(l.iter().collect::<Vec<_>>(), eager);
        for (p, v) in eager.iter().enumerate() {
            assert_eq!(l.position(v["metadata"]["uuid"].as_str().unwrap()), Some(p));
        }
        l.remove_front(2);
        eager.drain(..2);
        assert_eq!(l.iter().collect::<Vec<_>>(), eager);
        assert_eq!(l.range(1, 100), eager[1..].to_vec());
        // Pair v0 was carried by 0, 3, 6, 9: 0 and 9 removed, 3 and 6
        // still there (the front removal took 1 and 2).
        assert_eq!(l.category_pairs(), vec![("k".to_string(), "v0".to_string()), ("k".into(), "v1".into()), ("k".into(), "v2".into())]);
        assert!(l.remove(&crate::estate::uuid("t", 3)));
        assert!(l.category_pairs().contains(&("k".to_string(), "v0".to_string())), "6 carries v0");
        assert!(l.remove(&crate::estate::uuid("t", 6)));
        assert!(!l.category_pairs().contains(&("k".to_string(), "v0".to_string())), "no entity carries v0 now");
    }

    #[test]
    fn index_of_reads_back_the_uuid() {
        for i in [0usize, 1, 77, 999_999, 1 << 50] {
            assert_eq!(index_of("vm", &crate::estate::uuid("vm", i)), Some(i));
        }
        assert_eq!(index_of("host", &crate::estate::uuid("vm", 3)), None, "another kind's uuid");
        assert_eq!(index_of("vm", "not-a-uuid"), None);
    }
}
