//! `cf-host new NAME --lang rust|python|ts [--dir DIR]`: scaffolds a
//! collector project (the logic is `cf_host::scaffold`).

use cf_host::scaffold::{self, Lang};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The collector's name (`[a-z][a-z0-9-]*`): its identity and the directory.
    name: String,
    /// The language: rust, python or ts.
    #[arg(long)]
    lang: String,
    /// Where to create it (default: ./NAME); must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(a: Args) -> Result<ExitCode, String> {
    let lang: Lang = a.lang.parse().map_err(|e: scaffold::ScaffoldError| e.to_string())?;
    scaffold::check_name(&a.name).map_err(|e| e.to_string())?;
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
    let written = scaffold::create(&a.name, lang, &dir).map_err(|e| e.to_string())?;
    println!("created {} ({} files):", dir.display(), written.len());
    for p in &written {
        println!("  {}", p.strip_prefix(&dir).unwrap_or(p).display());
    }
    let component = scaffold::component_path(&a.name, lang);
    println!("next: build it as {}/README.md says, then", dir.display());
    println!("  cf-host test {} --cassette cassette --expect expect.json", component.display());
    println!("  cf-host test --conformance {}", component.display());
    Ok(ExitCode::SUCCESS)
}
