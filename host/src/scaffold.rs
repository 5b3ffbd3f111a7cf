//! `cf-host new NAME --lang rust|python|ts`: a collector project that
//! builds and passes its first `cf-host test`.
//!
//! The templates are files in the repository (`host/templates/<lang>/`,
//! and the hello examples `examples/rust-hello/src/lib.rs`,
//! `examples/python-hello/hello.py` and `examples/ts-hello/hello.ts`),
//! compiled in with `include_str!`; `{{name}}` (the collector's name) and
//! `{{crate}}` (its Rust crate name, `-` as `_`) are substituted. The Rust
//! project gets a copy of the Rust SDK (`sdk/rust`, with the current world
//! `wit/collector.wit`) under `vendor/cloudforet-collector`, so it builds
//! offline and wherever it is moved. Every project gets an empty cassette
//! and the `expect.json` its first test checks.

use std::path::{Path, PathBuf};

/// The language of a new collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Ts,
}

impl std::str::FromStr for Lang {
    type Err = ScaffoldError;

    fn from_str(s: &str) -> Result<Lang, ScaffoldError> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "ts" | "typescript" => Ok(Lang::Ts),
            other => Err(ScaffoldError::Lang(other.to_string())),
        }
    }
}

/// Why a project was not created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid collector name {0:?}: use a lowercase letter, then lowercase letters, digits and '-' ([a-z][a-z0-9-]*)")]
    Name(String),
    #[error("unknown language {0:?}: use rust, python or ts")]
    Lang(String),
    #[error("{0} exists and is not an empty directory; choose another --dir or NAME")]
    NotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The `[a-z][a-z0-9-]*` names `cf-host new` accepts (at most 64 bytes).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && name.len() <= 64 { Ok(()) } else { Err(ScaffoldError::Name(name.to_string())) }
}

const RUST_CARGO: &str = include_str!("../templates/rust/Cargo.toml.tmpl");
const RUST_HELLO: &str = include_str!("../../examples/rust-hello/src/lib.rs");
const RUST_README: &str = include_str!("../templates/rust/README.md");
const PYTHON_README: &str = include_str!("../templates/python/README.md");
const TS_README: &str = include_str!("../templates/ts/README.md");
const CASSETTE: &str = include_str!("../templates/common/cassette.json");
const EXPECT: &str = include_str!("../templates/common/expect.json");
const GITIGNORE: &str = include_str!("../templates/common/gitignore");
const WIT: &str = include_str!("../../wit/collector.wit");
const PYTHON_HELLO: &str = include_str!("../../examples/python-hello/hello.py");
const TS_HELLO: &str = include_str!("../../examples/ts-hello/hello.ts");

/// The Rust SDK as a new project vendors it (path under
/// `vendor/cloudforet-collector`, contents).
const RUST_SDK: [(&str, &str); 14] = [
    ("vendor/cloudforet-collector/Cargo.toml", include_str!("../../sdk/rust/Cargo.toml")),
    ("vendor/cloudforet-collector/wit/collector.wit", WIT),
    ("vendor/cloudforet-collector/src/lib.rs", include_str!("../../sdk/rust/src/lib.rs")),
    ("vendor/cloudforet-collector/src/build.rs", include_str!("../../sdk/rust/src/build.rs")),
    ("vendor/cloudforet-collector/src/client.rs", include_str!("../../sdk/rust/src/client.rs")),
    ("vendor/cloudforet-collector/src/console.rs", include_str!("../../sdk/rust/src/console.rs")),
    ("vendor/cloudforet-collector/src/error.rs", include_str!("../../sdk/rust/src/error.rs")),
    ("vendor/cloudforet-collector/src/guest.rs", include_str!("../../sdk/rust/src/guest.rs")),
    ("vendor/cloudforet-collector/src/heap.rs", include_str!("../../sdk/rust/src/heap.rs")),
    ("vendor/cloudforet-collector/src/io.rs", include_str!("../../sdk/rust/src/io.rs")),
    ("vendor/cloudforet-collector/src/layout.rs", include_str!("../../sdk/rust/src/layout.rs")),
    ("vendor/cloudforet-collector/src/plugin.rs", include_str!("../../sdk/rust/src/plugin.rs")),
    ("vendor/cloudforet-collector/src/record.rs", include_str!("../../sdk/rust/src/record.rs")),
    ("vendor/cloudforet-collector/src/testing.rs", include_str!("../../sdk/rust/src/testing.rs")),
];

/// The project's files (path relative to its directory, contents), in
/// the order they are written.
pub fn files(name: &str, lang: Lang) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    check_name(name)?;
    let crate_name = name.replace('-', "_");
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{crate}}", &crate_name);
    let mut out = match lang {
        // The hello example: its provider and identity are the crate's name.
        Lang::Rust => [("Cargo.toml", fill(RUST_CARGO)), ("src/lib.rs", RUST_HELLO.to_string()), ("README.md", fill(RUST_README))]
            .into_iter()
            .chain(RUST_SDK.iter().map(|(p, t)| (*p, t.to_string())))
            .collect(),
        // The hello examples, under the new name (their identity).
        Lang::Python => vec![
            ("collector.py", PYTHON_HELLO.replace("name=\"hello-py\"", &format!("name=\"{name}\""))),
            ("README.md", fill(PYTHON_README)),
        ],
        Lang::Ts => vec![
            ("collector.ts", TS_HELLO.replace("name: 'hello-ts'", &format!("name: '{name}'"))),
            ("README.md", fill(TS_README)),
        ],
    };
    out.extend([
        ("cassette/cassette.json", CASSETTE.to_string()),
        ("expect.json", EXPECT.to_string()),
        (".gitignore", GITIGNORE.to_string()),
    ]);
    Ok(out)
}

/// Writes a new project into `dir` (created; refused if it exists and is
/// not an empty directory). Answers the files written.
pub fn create(name: &str, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let files = files(name, lang)?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A file, or unreadable: not an empty directory.
        Err(_) => return Err(ScaffoldError::NotEmpty(dir.to_path_buf())),
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        let write = |p: &Path| -> std::io::Result<()> {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, text.as_bytes())
        };
        write(&path).map_err(|source| ScaffoldError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// The component a project's build makes, relative to its directory.
pub fn component_path(name: &str, lang: Lang) -> PathBuf {
    match lang {
        Lang::Rust => Path::new("target/wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_"))),
        Lang::Python | Lang::Ts => PathBuf::from(format!("{name}.wasm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_with_dashes() {
        for ok in ["x", "my-collector", "a1-b2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "1x", "-x", "My", "my_collector", "a b", "ü", "../x"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().contains("[a-z][a-z0-9-]*"), "{bad}: {e}");
        }
        assert!(matches!("go".parse::<Lang>(), Err(ScaffoldError::Lang(_))));
    }

    #[test]
    fn every_language_gets_its_sources_a_readme_a_cassette_and_expectations() {
        let names = |lang| files("my-collector", lang).unwrap().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        let common = ["cassette/cassette.json", "expect.json", ".gitignore"];
        let sdk: Vec<&str> = RUST_SDK.iter().map(|(p, _)| *p).collect();
        assert_eq!(names(Lang::Rust), [&["Cargo.toml", "src/lib.rs", "README.md"][..], &sdk, &common].concat());
        assert_eq!(names(Lang::Python), [&["collector.py", "README.md"][..], &common].concat());
        assert_eq!(names(Lang::Ts), [&["collector.ts", "README.md"][..], &common].concat());
        for lang in [Lang::Rust, Lang::Python, Lang::Ts] {
            for (path, text) in files("my-collector", lang).unwrap() {
                assert!(path.starts_with("vendor/") || !text.contains("{{"), "{lang:?} {path}: a placeholder is left");
            }
        }
    }

    #[test]
    fn the_name_is_the_identity_and_the_crate() {
        let get = |lang, file: &str| files("my-collector", lang).unwrap().into_iter().find(|(p, _)| *p == file).unwrap().1;
        assert!(get(Lang::Rust, "Cargo.toml").contains("name = \"my-collector\"\n"));
        assert!(get(Lang::Rust, "Cargo.toml").contains("\n[workspace]\n"), "its own workspace");
        assert!(get(Lang::Rust, "src/lib.rs").contains("export!(Hello);"), "identity from the crate's name");
        assert!(get(Lang::Rust, "README.md").contains("release/my_collector.wasm"));
        assert_eq!(get(Lang::Rust, "vendor/cloudforet-collector/wit/collector.wit"), WIT);
        assert!(WIT.contains("package cloudforet:collector@0.3.1;") && WIT.contains("world plugin {"));
        assert!(get(Lang::Python, "collector.py").contains("CollectorPluginServer(name=\"my-collector\", version=\"0.1.0\")"));
        assert!(get(Lang::Python, "README.md").contains("build.py\" collector.py -o my-collector.wasm"));
        assert!(get(Lang::Ts, "collector.ts").contains("new CollectorPluginServer({ name: 'my-collector', version: '0.1.0' })"));
        assert!(get(Lang::Ts, "README.md").contains("cf-collector-build.mjs\" collector.ts -o my-collector.wasm --check"));
    }

    /// Every file of the SDK crate is vendored (a new module would
    /// otherwise be missing from new projects), and the SDK is the one
    /// guest-nutanix builds on.
    #[test]
    fn the_vendored_sdk_is_the_whole_sdk() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        on_disk.sort();
        let mut vendored: Vec<String> = RUST_SDK.iter().filter_map(|(p, _)| p.strip_prefix("vendor/cloudforet-collector/src/")).map(String::from).collect();
        vendored.sort();
        assert_eq!(vendored, on_disk);
        let guest = include_str!("../../guest-nutanix/Cargo.toml");
        assert!(guest.contains("cloudforet-collector = { path = \"../sdk/rust\""), "guest-nutanix is built on the SDK");
    }

    #[test]
    fn an_existing_non_empty_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("cf-host-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let written = create("x", Lang::Python, &dir).unwrap();
        assert_eq!(written.len(), 5);
        assert!(dir.join("cassette/cassette.json").is_file());
        let e = create("x", Lang::Python, &dir).unwrap_err();
        assert!(matches!(e, ScaffoldError::NotEmpty(_)), "{e}");
        assert!(e.to_string().contains("is not an empty directory"));
        let file = dir.join("expect.json");
        assert!(matches!(create("x", Lang::Rust, &file), Err(ScaffoldError::NotEmpty(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
