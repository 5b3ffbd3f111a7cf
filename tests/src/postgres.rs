//! A real PostgreSQL server for a test: `initdb` into a temp directory and
//! `pg_ctl start` listening only on a Unix socket there (no TCP port), from
//! Debian's `postgresql` package (its `bin` directory under
//! `/usr/lib/postgresql/<version>/`, or `initdb` on `PATH`). As root, the
//! server runs as the `postgres` user (`runuser`): PostgreSQL refuses root.
//! Stopped (immediately) and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// Connection string for `--database` (`host=<socket dir> ...`).
    pub url: String,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").is_file()).collect())
        .unwrap_or_default();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return newest;
    }
    let which = Command::new("sh").args(["-c", "command -v initdb"]).output().expect("sh runs");
    let initdb = String::from_utf8_lossy(&which.stdout).trim().to_string();
    assert!(!initdb.is_empty(), "PostgreSQL is not installed: the README's test command installs Debian's `postgresql`");
    Path::new(&initdb).parent().expect("a directory").to_path_buf()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// A new server with a database `cf` owned by user `cf` (trust auth on
    /// its socket only).
    pub fn start() -> Postgres {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // Short: a Unix socket path has a limit of about 100 bytes.
        let dir = PathBuf::from(format!("/tmp/cfpg-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        let pg = Postgres { url: format!("host={} port=5432 user=cf dbname=cf", dir.display()), dir, bin: bin_dir() };
        if is_root() {
            let o = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir).output().expect("chown runs");
            assert!(o.status.success(), "chown: {}", String::from_utf8_lossy(&o.stderr));
        }
        pg.run("initdb", &["-D", "data", "-A", "trust", "-U", "cf", "--no-sync", "-E", "UTF8"]);
        pg.start_server();
        pg.run("createdb", &["-h", &pg.dir.display().to_string(), "-U", "cf", "cf"]);
        pg
    }

    /// Starts the server again (after [`Postgres::stop`]).
    pub fn start_server(&self) {
        let opts = format!("-k {} -c listen_addresses='' -c fsync=off -c max_connections=200 -p 5432", self.dir.display());
        self.run("pg_ctl", &["-D", "data", "-o", &opts, "-l", "log", "-w", "start"]);
    }

    /// Stops the server at once (clients are cut off).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", "data", "-m", "immediate", "-w", "stop"]);
    }

    /// `tool` of the server's package, as the `postgres` user when root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.current_dir(&self.dir);
        c
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let o = self.command(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        assert!(o.status.success(), "{tool} {args:?}: {}{}\n{log}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", "data", "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
