//! A throwaway PostgreSQL cluster for the tests and benches that need a real server:
//! `initdb` into a temporary directory, `postgres` on a free port of 127.0.0.1 (and a
//! socket in the same directory), one cluster per test binary, a fresh database per test.
//!
//! As root, the server runs as the `postgres` user (`runuser`): initdb refuses root, so the
//! directory is handed to that user. The cluster is stopped (`pg_ctl stop -m immediate`)
//! and its directory removed when the [`Cluster`] drops; the shared one drops when the test
//! process exits. Every wait is bounded (`pg_ctl -w -t 60`). Missing binaries fail loudly
//! with the fix (`./scripts/setup.sh` installs Debian 12's `postgresql-15`), never skip.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where Debian 12's `postgresql-15` puts the server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub const USER: &str = "ivrflow";
pub const PASSWORD: &str = "ivrflow-test-password";

pub struct Cluster {
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
}

fn bin(name: &str) -> PathBuf {
    let p = Path::new(BIN_DIR).join(name);
    assert!(
        p.exists(),
        "{} is missing: the PostgreSQL tests need Debian 12's postgresql-15. \
         Run ./scripts/setup.sh (it installs it), then run the tests again.",
        p.display()
    );
    p
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn uid_gid_of(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3
            && f[0] == user
            && let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse())
        {
            return (u, g);
        }
    }
    panic!(
        "no user {user:?}: running as root, the test server runs as `postgres`, which the \
         postgresql-15 package creates. Run ./scripts/setup.sh"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral TCP port on 127.0.0.1")
}

impl Cluster {
    /// Start a new cluster. `durable`: fsync and synchronous commits as in production (for
    /// benchmarks against SQLite's `synchronous=FULL`); off, the tests run faster.
    pub fn start(durable: bool) -> Cluster {
        let initdb = bin("initdb");
        let pg_ctl = bin("pg_ctl");
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ivrflow-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let run_as = is_root().then(|| "postgres".to_owned());
        if run_as.is_some() {
            let (uid, gid) = uid_gid_of("postgres");
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("hand the cluster directory to postgres");
        }
        let mut cluster = Cluster {
            dir,
            port: 0,
            run_as,
        };
        let pwfile = cluster.dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("write the password file");
        if let Some(user) = &cluster.run_as {
            let (uid, gid) = uid_gid_of(user);
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown pw");
        }
        let data = cluster.dir.join("data");
        let out = cluster.run(
            &initdb,
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        check("initdb", &out);
        let log = cluster.dir.join("server.log");
        // A port can be taken between our probe and the server's bind: try a few.
        for attempt in 0..3 {
            cluster.port = free_port();
            let mut opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                cluster.port,
                cluster.dir.display()
            );
            if !durable {
                opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let out = cluster.run(
                &pg_ctl,
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            if out.status.success() {
                return cluster;
            }
            if attempt == 2 {
                let server_log = std::fs::read_to_string(&log).unwrap_or_default();
                check("pg_ctl start", &out);
                panic!("pg_ctl start failed; server log:\n{server_log}");
            }
        }
        unreachable!()
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` (over TCP on loopback, with the password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.url(&name)
    }
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = Path::new(BIN_DIR).join("pg_ctl");
        if self.port != 0 && pg_ctl.exists() {
            let data = self.dir.join("data");
            let _ = self.run(
                &pg_ctl,
                &[
                    "-D",
                    data.to_str().unwrap_or(""),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);

extern "C" fn stop_shared() {
    if let Ok(mut g) = SHARED.lock() {
        drop(g.take());
    }
}

/// A fresh database in this process's cluster (started on first use, stopped and removed
/// when the process exits); its URL.
pub fn fresh_database() -> String {
    let mut g = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(Cluster::start(false));
        // SAFETY: registering a plain `extern "C" fn` without captured state.
        unsafe {
            libc::atexit(stop_shared);
        }
    }
    g.as_ref().map(Cluster::fresh_database).unwrap_or_default()
}
