//! `cf-host serve --config FILE`: a TOML file whose keys are the long flags
//! of `serve` (`drain-timeout = 60`, `plugins-dir = "/plugins"`,
//! `insecure-registry = ["localhost:5000"]`; `snake_case` works too).
//!
//! Precedence, highest first: the command line, environment variables, the
//! file, the built-in defaults. The file is expanded into flags placed before
//! the command line's own (clap lets a later flag override an earlier one);
//! a key whose flag has an environment variable that is set is skipped.
//! List-valued flags add up. Unknown keys, tables and values of the wrong
//! kind are errors naming the key. `cf-host.example.toml` documents every
//! key with its default.
//!
//! Failures are a [`ConfigFileError`] (the file cannot be read, or one of
//! its keys is a [`KeyError`]); `main` prints its text.

use clap::Command;
use std::ffi::OsString;

/// Why `--config FILE` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config {}: {source}", path.to_string_lossy())]
    Read { path: OsString, source: std::io::Error },
    /// The command has no `serve` subcommand to expand into.
    #[error("no serve command")]
    NoServe,
    #[error("config {}: {source}", path.to_string_lossy())]
    Invalid { path: OsString, source: KeyError },
}

/// What is wrong in a config file's text.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not TOML.
    #[error("{0}")]
    Toml(String),
    #[error("unknown key {0:?} (keys are the long flags of `cf-host serve`)")]
    Unknown(String),
    #[error("key {key:?}: expected a string, number or boolean, got {got}")]
    NotScalar { key: String, got: &'static str },
    #[error("key {0:?} is a switch: use true or false")]
    Switch(String),
}

/// Expands `--config FILE` (or `CF_HOST_CONFIG`) after the `serve`
/// subcommand of `args`; other argument lists are returned unchanged.
pub fn expand(args: Vec<OsString>, cli: &Command) -> Result<Vec<OsString>, ConfigFileError> {
    let Some(serve_at) = args.iter().position(|a| a == "serve") else { return Ok(args) };
    let mut path = std::env::var_os("CF_HOST_CONFIG");
    let mut i = serve_at + 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--config" {
            path = args.get(i + 1).cloned();
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.into());
        }
        i += 1;
    }
    let Some(path) = path else { return Ok(args) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(source) => return Err(ConfigFileError::Read { path, source }),
    };
    let serve = cli.find_subcommand("serve").ok_or(ConfigFileError::NoServe)?;
    let flags = flags(&text, serve).map_err(|source| ConfigFileError::Invalid { path, source })?;
    let mut out = args[..=serve_at].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(args[serve_at + 1..].iter().cloned());
    Ok(out)
}

/// The flags a config file's text stands for.
pub fn flags(text: &str, serve: &Command) -> Result<Vec<String>, KeyError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| KeyError::Toml(e.message().to_string()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| KeyError::Unknown(key.clone()))?;
        if arg.get_env().is_some_and(|env| std::env::var_os(env).is_some()) {
            continue; // the environment wins over the file
        }
        let takes_value = arg.get_action().takes_values();
        let scalar = |v: &toml::Value| -> Result<String, KeyError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(n) => Ok(n.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                other => Err(KeyError::NotScalar { key: key.clone(), got: other.type_str() }),
            }
        };
        match (&value, takes_value) {
            (toml::Value::Boolean(true), false) => out.push(format!("--{long}")),
            (toml::Value::Boolean(false), false) => {}
            (_, false) => return Err(KeyError::Switch(key)),
            (toml::Value::Array(items), true) => {
                for item in items {
                    out.push(format!("--{long}={}", scalar(item)?));
                }
            }
            (v, true) => out.push(format!("--{long}={}", scalar(v)?)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cli() -> Command {
        Command::new("t").subcommand(
            Command::new("serve")
                .arg(Arg::new("port").long("port"))
                .arg(Arg::new("no_cache").long("no-cache").action(ArgAction::SetTrue))
                .arg(Arg::new("insecure").long("insecure-registry").action(ArgAction::Append))
                .arg(Arg::new("config").long("config")),
        )
    }

    #[test]
    fn keys_become_flags_before_the_command_lines_own() {
        let cmd = cli();
        let serve = cmd.find_subcommand("serve").unwrap();
        let f = flags("port = 50051\nno_cache = true\ninsecure-registry = [\"a:5000\", \"b:5000\"]\n", serve).unwrap();
        assert_eq!(f, ["--insecure-registry=a:5000", "--insecure-registry=b:5000", "--no-cache", "--port=50051"]);
        assert!(flags("no-cache = false", serve).unwrap().is_empty());
        let e = flags("colour = 1", serve).unwrap_err();
        assert!(matches!(&e, KeyError::Unknown(k) if k == "colour"));
        assert!(e.to_string().contains("unknown key \"colour\""));
        let e = flags("no-cache = 1", serve).unwrap_err();
        assert!(matches!(&e, KeyError::Switch(k) if k == "no-cache"));
        assert!(e.to_string().contains("is a switch"));
        let e = flags("port = {a = 1}", serve).unwrap_err();
        assert!(matches!(&e, KeyError::NotScalar { key, got: "table" } if key == "port"));
        assert!(e.to_string().contains("expected a string, number or boolean"));
        assert!(matches!(flags("port = ", serve), Err(KeyError::Toml(_))));

        let dir = std::env::temp_dir().join(format!("cf-config-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "port = 1\n").unwrap();
        let args: Vec<OsString> = ["cf-host", "--log", "info", "serve", "--config", file.to_str().unwrap(), "--port", "2"].iter().map(OsString::from).collect();
        let out = expand(args, &cmd).unwrap();
        let out: Vec<String> = out.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(out[..5], ["cf-host", "--log", "info", "serve", "--port=1"], "the file's flags come first: the command line wins");
        assert_eq!(out[out.len() - 1], "2");
        let untouched: Vec<OsString> = ["cf-host", "collect"].iter().map(OsString::from).collect();
        assert_eq!(expand(untouched.clone(), &cmd).unwrap(), untouched);
    }
}
