//! The crates' module structure: no import cycles between files.
//!
//! Every `.rs` file of a crate's `src/` is a node; a `use` path or a
//! qualified path (`crate::a::b`, `super::c`, `self::d`) in a file is an
//! edge to the file that defines the longest module prefix of that path.
//! `mod` declarations are not edges (a parent declaring a child does not
//! depend on it), `pub use` re-exports are. Comments, strings and
//! `#[cfg(test)] mod tests` blocks are left out: tests may reach anywhere.
//! A cycle of two or more files fails the test with the files in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["grpc", "convert"]`) → file, for every file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                let mut next = prefix.to_vec();
                next.push(name);
                walk(&p, &next, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                // main.rs is the root of the binary, another crate: its
                // `crate::` paths are not the library's. Only lib.rs is.
                if prefix.is_empty() && name == "main" {
                    continue;
                }
                let mut path = prefix.to_vec();
                if !(name == "mod" || (prefix.is_empty() && name == "lib")) {
                    path.push(name);
                }
                out.insert(path, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The source without comments, string and char literals, and without the
/// `#[cfg(test)]` item that follows the attribute (a test module).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) && (i == 0 || !is_ident(b[i - 1])) {
            // Raw string: r#*"..."#*
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push(b[i] as char);
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || (b[i + 1] == b'\\')) {
            // A char literal ('a', '\n', '\''); lifetimes have no closing quote.
            i += if b[i + 1] == b'\\' { 2 } else { 1 };
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    strip_test_modules(&out)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Drops every `#[cfg(test)]` item (up to its matching closing brace or `;`).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let b = after.as_bytes();
        let mut i = 0;
        let mut depth = 0;
        while i < b.len() {
            match b[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        rest = &after[i..];
    }
    out.push_str(rest);
    out
}

/// Every path the code names, with the inline modules (`mod x { .. }`) it
/// sits in: the expansions of `use` trees and the qualified paths.
fn paths(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    // Inline modules open here: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let here = |inline: &Vec<(String, usize)>| inline.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    while i < tokens.len() {
        if tokens[i] == "{" {
            depth += 1;
            i += 1;
            continue;
        }
        if tokens[i] == "}" {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if tokens[i] == "mod" && tokens.get(i + 2).is_some_and(|t| t == "{") {
            inline.push((tokens[i + 1].clone(), depth + 1));
            depth += 1;
            i += 3;
            continue;
        }
        if tokens[i] == "use" {
            let mut j = i + 1;
            let mut tree = Vec::new();
            while j < tokens.len() && tokens[j] != ";" {
                tree.push(tokens[j].clone());
                j += 1;
            }
            let mut expanded = Vec::new();
            expand_use(&tree, &mut Vec::new(), &mut expanded);
            let at = here(&inline);
            out.extend(expanded.into_iter().map(|p| (at.clone(), p)));
            i = j;
        } else if is_word(&tokens[i]) && tokens.get(i + 1).is_some_and(|t| t == "::") && (i == 0 || tokens[i - 1] != "::") {
            let mut p = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::") && tokens.get(j + 1).is_some_and(|t| is_word(t)) {
                p.push(tokens[j + 1].clone());
                j += 2;
            }
            out.push((here(&inline), p));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn is_word(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand_use(tree: &[String], prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    // Split the tree at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, t) in tree.iter().enumerate() {
        match t.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    for part in parts {
        let mut p = prefix.clone();
        let mut k = 0;
        while k < part.len() {
            let t = &part[k];
            if t == "{" {
                // The matching close is the part's last token.
                let inner = &part[k + 1..part.len().saturating_sub(1)];
                expand_use(inner, &mut p, out);
                p.clear();
                break;
            } else if t == "as" {
                break;
            } else if t != "::" && t != "pub" && t != "(" && t != ")" && t != "*" {
                p.push(t.clone());
            }
            k += 1;
        }
        if !p.is_empty() {
            out.push(p);
        }
    }
}

/// The file a path leads to, from the module `from`. A path that starts
/// with neither `crate`, `super` nor `self` leads somewhere only when its
/// first segment is a child module of `from` (`use convert::status;` in
/// `grpc/mod.rs`); anything else is another crate or a local item.
fn resolve(path: &[String], from: &[String], mods: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    let (mut abs, mut rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.to_vec(), &path[1..]),
        "super" => {
            // In `a/b.rs` (module a::b) and in `a/b/mod.rs` alike, `super` is `a`.
            let mut m = from.to_vec();
            m.pop()?;
            (m, &path[1..])
        }
        first => {
            let mut child = from.to_vec();
            child.push(first.to_string());
            if !mods.contains_key(&child) {
                return None;
            }
            (from.to_vec(), path)
        }
    };
    while rest.first().is_some_and(|s| s == "super") {
        abs.pop()?;
        rest = &rest[1..];
    }
    abs.extend(rest.iter().cloned());
    while !abs.is_empty() && !mods.contains_key(&abs) {
        abs.pop();
    }
    mods.get(&abs).cloned()
}

/// Strongly connected components with more than one file.
fn cycles(src: &Path) -> Vec<Vec<String>> {
    let mods = modules(src);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (m, file) in &mods {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let set = edges.entry(file.clone()).or_default();
        for (inline, p) in paths(&code) {
            // Inside `mod x { .. }` of module m, paths are relative to m::x.
            let from: Vec<String> = m.iter().cloned().chain(inline).collect();
            if let Some(to) = resolve(&p, &from, &mods)
                && &to != file
            {
                set.insert(to);
            }
        }
    }
    // Tarjan's algorithm.
    struct T<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        n: usize,
        out: Vec<Vec<&'a PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        t.index.insert(v, t.n);
        t.low.insert(v, t.n);
        t.n += 1;
        t.stack.push(v);
        t.on.insert(v);
        let edges = t.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let mut t = T { edges: &edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), n: 0, out: Vec::new() };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|p| p.strip_prefix(src).unwrap_or(p).display().to_string()).collect();
            names.sort();
            names
        })
        .collect()
}

fn crate_src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel).join("src")
}

#[test]
fn the_checker_finds_a_cycle_and_ignores_what_is_no_edge() {
    let dir = cf_tests::temp_dir("structure-check");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n// use crate::a;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "pub mod c;\nuse crate::b::{Thing, other::{X as Y}};\n").unwrap();
    std::fs::write(src.join("a/c.rs"), "fn f() { let s = \"crate::b::x\"; }\n#[cfg(test)]\nmod tests { use crate::a::*; }\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Thing;\nfn g() -> crate::a::c::T { todo!() }\n").unwrap();
    // a/mod.rs → b.rs → a/c.rs: no cycle yet (c names nothing outside tests and strings).
    assert!(cycles(&src).is_empty(), "{:?}", cycles(&src));
    std::fs::write(src.join("a/c.rs"), "use super::super::a::Z;\n").unwrap();
    // Now a/c.rs → a/mod.rs → b.rs → a/c.rs.
    assert_eq!(cycles(&src), vec![vec!["a/c.rs".to_string(), "a/mod.rs".to_string(), "b.rs".to_string()]]);
}

#[test]
fn the_host_has_no_import_cycles() {
    let found = cycles(&crate_src("host"));
    assert!(found.is_empty(), "import cycles between host files: {found:#?}");
}
#[test]
fn the_guest_has_no_import_cycles() {
    let found = cycles(&crate_src("guest-nutanix"));
    assert!(found.is_empty(), "import cycles between guest files: {found:#?}");
}
