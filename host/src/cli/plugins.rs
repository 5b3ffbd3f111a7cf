//! `cf-host plugins ...`: the admin API's client, and the commands that
//! work on files and registries (keygen, sign, push).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Admin API URL.
    #[arg(long, env = "CF_HOST_ADMIN_URL", default_value = "http://127.0.0.1:50052")]
    admin: String,
    /// Bearer token of the admin API (not needed by push).
    #[arg(long, env = "CF_HOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Versions loaded, live, pinned, in use.
    List,
    /// Upload a component, or have the server pull one from an OCI registry
    /// (--oci); it goes live with --activate (or when it is the first version).
    Load {
        #[arg(required_unless_present = "oci", conflicts_with = "oci")]
        file: Option<PathBuf>,
        /// Pull this wasm OCI artifact (registry/repository:tag or @sha256:..) instead.
        #[arg(long)]
        oci: Option<String>,
        /// Expected sha256 digest (sha256:<hex>); refused on mismatch.
        #[arg(long)]
        digest: Option<String>,
        #[arg(long)]
        activate: bool,
    },
    /// Make NAME@VERSION the live version.
    Activate { plugin: String },
    /// Route a share of the tenants (the same ones each time) to NAME@VERSION;
    /// --percent 0 ends the canary, activate promotes it, rollback ends it.
    Canary {
        plugin: String,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
    },
    /// Return NAME to its previous live version.
    Rollback { name: String },
    /// Pin a tenant (or, without --tenant, everyone) to NAME@VERSION.
    Pin {
        plugin: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a tenant's pin on NAME.
    Unpin {
        name: String,
        #[arg(long)]
        tenant: String,
    },
    /// Unload NAME@VERSION (refused while live, pinned or running).
    Unload { plugin: String },
    /// Create an ed25519 signing key: writes <DIR>/<KEY_ID>.key (keep it
    /// secret) and prints the line to add to the host's --trusted-keys file.
    Keygen {
        key_id: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Sign a component: adds a signature over its name, version and digest
    /// to the manifest beside it (<file>.json), which travels with it
    /// (plugins directory, load, push).
    Sign {
        file: PathBuf,
        /// Private key file from keygen.
        #[arg(long)]
        key: PathBuf,
    },
    /// Push a component (and the manifest beside it, if any) to an OCI
    /// registry as a wasm artifact. Talks to the registry, not to the server;
    /// credentials from CF_HOST_OCI_USERNAME / CF_HOST_OCI_PASSWORD.
    Push {
        file: PathBuf,
        /// registry/repository:tag, e.g. registry.example.com/cloudforet/nutanix:1.2.0
        reference: String,
        /// Plain HTTP to this registry (host:port), e.g. a local test registry.
        #[arg(long)]
        insecure: bool,
    },
}


pub async fn run(a: Args) -> Result<ExitCode, String> {
    let out = match a.action {
        Action::Push { file, reference, insecure } => push(&file, &reference, insecure).await?,
        Action::Keygen { key_id, dir } => keygen(&key_id, &dir)?,
        Action::Sign { file, key } => sign(&file, &key)?,
        action => {
            let token = a.token.ok_or("the admin API needs --token or CF_HOST_ADMIN_TOKEN")?;
            let client = cf_host::admin::Client::new(&a.admin, &token)?;
            match action {
                Action::List => client.list().await?,
                Action::Load { oci: Some(reference), digest, activate, .. } => client.load_oci(&reference, digest.as_deref(), activate).await?,
                Action::Load { file: Some(file), digest, activate, .. } => client.load(&file, digest.as_deref(), activate).await?,
                Action::Load { .. } => return Err("load needs a FILE or --oci REFERENCE".into()),
                Action::Activate { plugin } => client.activate(&plugin).await?,
                Action::Canary { plugin, percent } => client.canary(&plugin, percent).await?,
                Action::Rollback { name } => client.rollback(&name).await?,
                Action::Pin { plugin, tenant } => client.pin(&plugin, tenant.as_deref()).await?,
                Action::Unpin { name, tenant } => client.unpin(&name, &tenant).await?,
                Action::Unload { plugin } => client.unload(&plugin).await?,
                Action::Push { .. } | Action::Keygen { .. } | Action::Sign { .. } => return Err("handled above".into()),
            }
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `cf-host plugins keygen`.
fn keygen(key_id: &str, dir: &std::path::Path) -> Result<String, String> {
    use cf_host::registry::signature::PrivateKey;
    let key = PrivateKey::generate(key_id)?;
    let path = dir.join(format!("{key_id}.key"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, key.to_file_text().as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("private key: {} (keep it secret)\ntrusted-keys line:\n{}", path.display(), key.public_line()))
}

/// `cf-host plugins sign`: adds a signature to `<file>.json`.
fn sign(file: &std::path::Path, key: &std::path::Path) -> Result<String, String> {
    use cf_host::registry::{identity, signature::PrivateKey};
    let key = PrivateKey::load(key)?;
    let wasm = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let manifest_path = file.with_extension("json");
    let mut manifest = if manifest_path.exists() { identity::Manifest::load(&manifest_path)? } else { identity::Manifest::default() };
    let embedded = identity::embedded(&wasm)?;
    let (name, version) = identity::resolve(embedded.as_ref(), Some(&manifest))?;
    let digest = cf_host::runtime::component_digest(&wasm);
    manifest.signatures.retain(|s| s.key_id != key.key_id);
    manifest.signatures.push(key.sign(&name, &version, &digest));
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&manifest_path, text).map_err(|e| format!("cannot write {}: {e}", manifest_path.display()))?;
    Ok(format!("signed {name}@{version} ({digest}) with {} into {}\n", key.key_id, manifest_path.display()))
}

/// `cf-host plugins push`: the component and its manifest (`<file>.json`) to a registry.
async fn push(file: &std::path::Path, reference: &str, insecure: bool) -> Result<String, String> {
    use cf_host::registry::{identity::Manifest, oci};
    let wasm = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let manifest_path = file.with_extension("json");
    let manifest = if manifest_path.exists() { Some(Manifest::load(&manifest_path)?) } else { None };
    let parsed = oci::parse_reference(reference).map_err(|e| e.to_string())?;
    let insecure = if insecure { vec![parsed.registry().to_string()] } else { Vec::new() };
    let pushed = oci::push(reference, wasm, manifest.as_ref(), &oci::OciOptions::from_env(insecure)).await.map_err(|e| e.to_string())?;
    Ok(format!(
        "pushed {reference}\n  manifest {}\n  component {}\n  {}\n",
        pushed.manifest_digest, pushed.component_digest, pushed.manifest_url
    ))
}

