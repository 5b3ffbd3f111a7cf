//! What `cf-host dev` builds: the project's language, its build command
//! and the component the build makes.
//!
//! Rust: `cargo build --target wasm32-wasip2 --release` in the project,
//! the component `<target dir>/wasm32-wasip2/release/<lib>.wasm` as
//! `cargo metadata` names them. Python and TypeScript: the SDK build the
//! scaffold's README documents (`build.py collector.py`,
//! `cf-collector-build.mjs collector.ts --check`) from the cf-host checkout
//! (`CF_HOST`, else the one this binary was built from), into
//! `target/cf-host-dev/collector.wasm`. `--build CMD` (run by `sh -c`) and
//! `--component PATH` replace them.

use crate::scaffold::Lang;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a project cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot tell the language of {0}: it has no Cargo.toml, collector.py or collector.ts; give --lang")]
    UnknownLanguage(PathBuf),
    #[error("cargo metadata in {dir}: {reason}")]
    Metadata { dir: PathBuf, reason: String },
    #[error("{path} not found: set CF_HOST to a cf-host checkout (its sdk/ builds {lang} collectors), or give --build and --component")]
    Sdk { path: PathBuf, lang: &'static str },
    #[error("cannot create {path}: {source}")]
    WorkDir { path: PathBuf, source: std::io::Error },
    #[error("--build is empty")]
    EmptyBuild,
}

/// Why a build did not make a component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot start the build ({command}): {source}")]
    Spawn { command: String, source: std::io::Error },
    /// The build ran and failed: its output (the compiler's errors).
    #[error("the build failed ({status})")]
    Failed { status: std::process::ExitStatus, output: String },
    #[error("the build succeeded but {0} is missing")]
    NoComponent(PathBuf),
}

/// The command that builds a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildCommand {
    /// A program and its arguments.
    Argv(Vec<String>),
    /// A `--build` line, run by `sh -c`.
    Shell(String),
}

impl fmt::Display for BuildCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildCommand::Argv(argv) => f.write_str(&argv.join(" ")),
            BuildCommand::Shell(line) => f.write_str(line),
        }
    }
}

/// A collector project and how `cf-host dev` builds it.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub lang: Lang,
    pub build: BuildCommand,
    /// The component the build makes (absolute).
    pub component: PathBuf,
    /// `cf-host dev`'s own files (the precompile cache), under a `target/`.
    pub work_dir: PathBuf,
}

/// A successful build.
#[derive(Debug)]
pub struct Built {
    pub elapsed: Duration,
}

impl Project {
    /// The project in `dir`: the language (`lang`, else from its files),
    /// the build command (`build`, else the language's) and the component
    /// (`component`, relative to `dir`, else the language's).
    pub fn open(dir: &Path, lang: Option<Lang>, build: Option<String>, component: Option<PathBuf>) -> Result<Project, ProjectError> {
        if !dir.is_dir() {
            return Err(ProjectError::NotADirectory(dir.to_path_buf()));
        }
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let lang = match lang {
            Some(l) => l,
            None => detect(&dir)?,
        };
        let (default_build, default_component, work_dir) = match lang {
            // Both given: nothing to ask cargo (the defaults are not used).
            Lang::Rust if build.is_some() && component.is_some() => {
                (BuildCommand::Argv(Vec::new()), PathBuf::new(), dir.join("target").join("cf-host-dev"))
            }
            Lang::Rust => {
                let (target_dir, lib) = cargo_metadata(&dir)?;
                let argv = [cargo().as_str(), "build", "--target", "wasm32-wasip2", "--release"].map(String::from);
                let component = target_dir.join("wasm32-wasip2").join("release").join(format!("{lib}.wasm"));
                (BuildCommand::Argv(argv.to_vec()), component, target_dir.join("cf-host-dev"))
            }
            Lang::Python | Lang::Ts => {
                let work_dir = dir.join("target").join("cf-host-dev");
                let out = work_dir.join("collector.wasm");
                (sdk_build(&dir, lang, &out, build.is_some())?, out, work_dir)
            }
        };
        let build = match build {
            Some(line) if line.trim().is_empty() => return Err(ProjectError::EmptyBuild),
            Some(line) => BuildCommand::Shell(line),
            None => default_build,
        };
        let component = component.map(|c| dir.join(c)).unwrap_or(default_component);
        std::fs::create_dir_all(&work_dir).map_err(|source| ProjectError::WorkDir { path: work_dir.clone(), source })?;
        Ok(Project { dir, lang, build, component, work_dir })
    }

    /// Runs the build in the project directory, its output captured.
    /// Dropping the future stops the build.
    pub async fn build(&self, color: bool) -> Result<Built, BuildError> {
        let started = Instant::now();
        let mut cmd = match &self.build {
            BuildCommand::Argv(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no program");
                    return Err(BuildError::Spawn { command: String::new(), source });
                };
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                c
            }
            BuildCommand::Shell(line) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
        };
        cmd.current_dir(&self.dir).stdin(std::process::Stdio::null()).kill_on_drop(true);
        if color {
            cmd.env("CARGO_TERM_COLOR", "always");
        }
        let out = cmd.output().await.map_err(|source| BuildError::Spawn { command: self.build.to_string(), source })?;
        if !out.status.success() {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(BuildError::Failed { status: out.status, output });
        }
        if !self.component.is_file() {
            return Err(BuildError::NoComponent(self.component.clone()));
        }
        Ok(Built { elapsed: started.elapsed() })
    }
}

/// `Cargo.toml` → Rust, `collector.py` → Python, `collector.ts` →
/// TypeScript (the files `cf-host new` writes).
fn detect(dir: &Path) -> Result<Lang, ProjectError> {
    [("Cargo.toml", Lang::Rust), ("collector.py", Lang::Python), ("collector.ts", Lang::Ts)]
        .into_iter()
        .find(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
        .ok_or_else(|| ProjectError::UnknownLanguage(dir.to_path_buf()))
}

/// The cargo that runs this (`CARGO` under cargo), else `cargo`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The target directory and the cdylib's crate name, from `cargo metadata`.
fn cargo_metadata(dir: &Path) -> Result<(PathBuf, String), ProjectError> {
    let fail = |reason: String| ProjectError::Metadata { dir: dir.to_path_buf(), reason };
    let out = std::process::Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .map_err(|e| fail(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unreadable output: {e}")))?;
    let target_dir = meta["target_directory"].as_str().ok_or_else(|| fail("no target_directory".into()))?;
    let manifest = dir.join("Cargo.toml");
    let packages = meta["packages"].as_array().map(Vec::as_slice).unwrap_or_default();
    // The project's own package (a workspace may hold more).
    let package = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().is_some_and(|m| Path::new(m) == manifest))
        .or(packages.first())
        .ok_or_else(|| fail("no package".into()))?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["crate_types"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .and_then(|t| t["name"].as_str())
        .ok_or_else(|| fail(format!("{} has no cdylib target (crate-type = [\"cdylib\"])", manifest.display())))?;
    Ok((PathBuf::from(target_dir), lib.replace('-', "_")))
}

/// The cf-host checkout whose SDKs build Python and TypeScript collectors.
fn checkout() -> PathBuf {
    std::env::var_os("CF_HOST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("..")).to_path_buf())
}

/// The SDK build of the scaffold's README, writing `out`. With an
/// overriding `--build` the SDK may be missing.
fn sdk_build(dir: &Path, lang: Lang, out: &Path, overridden: bool) -> Result<BuildCommand, ProjectError> {
    let out = out.display().to_string();
    let (tool, argv) = match lang {
        Lang::Python => {
            let tool = checkout().join("sdk/python/src/cloudforet_collector/build.py");
            let venv = dir.join(".venv/bin/python");
            let python = if venv.is_file() { venv.display().to_string() } else { "python3".into() };
            let argv = vec![python, tool.display().to_string(), "collector.py".into(), "-o".into(), out, "-q".into()];
            (tool, argv)
        }
        // (Rust is built by cargo and never comes here.)
        Lang::Ts | Lang::Rust => {
            let tool = checkout().join("sdk/ts/bin/cf-collector-build.mjs");
            let argv = vec!["node".into(), tool.display().to_string(), "collector.ts".into(), "-o".into(), out, "--check".into()];
            (tool, argv)
        }
    };
    if !tool.is_file() && !overridden {
        let lang = if lang == Lang::Python { "Python" } else { "TypeScript" };
        return Err(ProjectError::Sdk { path: tool, lang });
    }
    Ok(BuildCommand::Argv(argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_scaffolds_files() {
        let dir = std::env::temp_dir().join(format!("cf-dev-project-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(detect(&dir), Err(ProjectError::UnknownLanguage(_))));
        std::fs::write(dir.join("collector.ts"), "").unwrap();
        assert_eq!(detect(&dir).unwrap(), Lang::Ts);
        std::fs::write(dir.join("collector.py"), "").unwrap();
        assert_eq!(detect(&dir).unwrap(), Lang::Python);
        let p = Project::open(&dir, None, Some("make wasm".into()), Some("out/x.wasm".into())).unwrap();
        assert_eq!(p.build, BuildCommand::Shell("make wasm".into()));
        let rust = Project::open(&dir, Some(Lang::Rust), Some("make wasm".into()), Some("out/x.wasm".into())).unwrap();
        assert_eq!((rust.build, rust.component), (p.build.clone(), p.component.clone()), "no Cargo.toml needed");
        assert!(matches!(Project::open(&dir, Some(Lang::Rust), None, None), Err(ProjectError::Metadata { .. })));
        assert_eq!(p.component, std::path::absolute(&dir).unwrap().join("out/x.wasm"));
        assert!(p.work_dir.ends_with("target/cf-host-dev") && p.work_dir.is_dir());
        assert!(matches!(Project::open(&dir, None, Some(" ".into()), None), Err(ProjectError::EmptyBuild)));
        assert!(matches!(Project::open(&dir.join("nope"), None, None, None), Err(ProjectError::NotADirectory(_))));
        std::fs::remove_dir_all(dir).ok();
    }
}
