//! A real PostgreSQL server for a test: `initdb` into a temp directory and
//! `pg_ctl start` listening on a Unix socket there (and, from
//! [`Postgres::start_tcp`], on a free loopback port, with TLS if asked), from
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
    /// The loopback TCP port ([`Postgres::start_tcp`]), else the socket's
    /// number (5432).
    pub port: u16,
    tcp: bool,
    /// `ssl=on` with the certificate and key written in the directory.
    tls: bool,
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
        Postgres::start_inner(None, None)
    }

    /// A server that also listens on 127.0.0.1 (a free port, [`Self::port`];
    /// trust auth there too) and, with `tls` = (certificate chain PEM, key
    /// PEM), has `ssl=on` with them.
    pub fn start_tcp(tls: Option<(&str, &str)>) -> Postgres {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        Postgres::start_inner(Some(port), tls)
    }

    fn start_inner(tcp_port: Option<u16>, tls: Option<(&str, &str)>) -> Postgres {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // Short: a Unix socket path has a limit of about 100 bytes.
        let dir = PathBuf::from(format!("/tmp/cfpg-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        let port = tcp_port.unwrap_or(5432);
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(dir.join("server.crt"), cert).expect("certificate");
            std::fs::write(dir.join("server.key"), key).expect("key");
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("key mode");
        }
        let pg = Postgres {
            url: format!("host={} port={port} user=cf dbname=cf", dir.display()),
            dir,
            bin: bin_dir(),
            port,
            tcp: tcp_port.is_some(),
            tls: tls.is_some(),
        };
        if is_root() {
            let o = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir).output().expect("chown runs");
            assert!(o.status.success(), "chown: {}", String::from_utf8_lossy(&o.stderr));
        }
        pg.run("initdb", &["-D", "data", "-A", "trust", "-U", "cf", "--no-sync", "-E", "UTF8"]);
        pg.start_server();
        pg.run("createdb", &["-h", &pg.dir.display().to_string(), "-p", &port.to_string(), "-U", "cf", "cf"]);
        pg
    }

    /// Starts the server again (after [`Postgres::stop`]).
    pub fn start_server(&self) {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let mut opts = format!("-k {} -c listen_addresses='{listen}' -c fsync=off -c max_connections=200 -p {}", self.dir.display(), self.port);
        if self.tls {
            let dir = self.dir.display();
            opts.push_str(&format!(" -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"));
        }
        self.run("pg_ctl", &["-D", "data", "-o", &opts, "-l", "log", "-w", "start"]);
    }

    /// Stops the server at once (clients are cut off).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", "data", "-m", "immediate", "-w", "stop"]);
    }

    /// Freezes the server and its backends (SIGSTOP): connections stay
    /// open and every call hangs, as with a database that stops answering
    /// without refusing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends `sig` to the postmaster (first line of `postmaster.pid`), then
    /// to its children (from `/proc/<pid>/stat`).
    fn signal(&self, sig: libc::c_int) {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).expect("postmaster.pid");
        let main: i32 = pidfile.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid");
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the command may hold spaces.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        for pid in pids {
            // SAFETY: kill has no memory preconditions; the pids are this
            // test's server's.
            unsafe { libc::kill(pid, sig) };
        }
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
