//! No import cycles between the guest's modules: each `src/*.rs` (the crate
//! root, `lib.rs`, is the shared vocabulary and not a node) may name other
//! modules through `crate::…` paths outside comments and test modules, and
//! following those names never leads back to where it started.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The first path segments a module's code names after `crate::`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for line in code.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: the first segment of each item.
                let group = group.split('}').next().unwrap_or_default();
                out.extend(group.split(',').map(|item| ident(item.trim())).filter(|m| !m.is_empty()));
            } else {
                out.insert(ident(rest));
            }
        }
    }
    out
}

/// Module → the modules it names (the code before its `#[cfg(test)]` module).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            let text = std::fs::read_to_string(&path).expect("module source");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default().to_string();
            files.insert(name, code);
        }
    }
    files
        .iter()
        .map(|(m, code)| (m.clone(), named_modules(code).into_iter().filter(|d| d != m && files.contains_key(d)).collect()))
        .collect()
}

/// A cycle through the graph, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn the_guest_modules_import_no_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.len() > 10, "the modules were found: {g:?}");
    assert!(g["collect"].contains("listing") && g["listing"].contains("prism"), "the checker sees imports: {g:?}");
    assert_eq!(cycle(&g), None, "{g:#?}");
}

/// The checker itself finds a cycle, also one hidden in a `crate::{..}` group,
/// and ignores comments.
#[test]
fn the_checker_finds_cycles() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), named_modules("use crate::{b::X, c};\n// crate::d\n"));
    g.insert("b".to_string(), named_modules("fn f() { crate::c::g() }"));
    g.insert("c".to_string(), BTreeSet::new());
    g.insert("d".to_string(), named_modules("use crate::a::Y;"));
    assert_eq!(g["a"], BTreeSet::from(["b".to_string(), "c".to_string()]));
    assert_eq!(cycle(&g), None);
    g.get_mut("c").unwrap().insert("a".to_string());
    assert_eq!(cycle(&g), Some(vec!["a".to_string(), "b".to_string(), "c".to_string(), "a".to_string()]));
}
