//! Fixtures shared by the vault's tests.
//!
//! PostgreSQL is never mocked in the vault's tests: each test gets a schema
//! of its own in the real database at `DATABASE_URL`, and a URL whose
//! connections use only that schema. A test that cannot reach PostgreSQL
//! fails, loudly; it does not skip. Servers run as real processes
//! ([`ServerProcess`], the four roles of one vault [`Roles`]), always
//! killed and reaped. Caller authentication is
//! tested against a real JWKS server and real signing keys ([`jwks`]);
//! keys in a hardware token, against a real SoftHSM2 token ([`softhsm`]).
//! A server's gRPC health is followed as it changes ([`health`]), and its
//! metrics are read as a scraper reads them ([`exposition`]). Connections
//! between parts are stalled and cut by a real TCP proxy ([`proxy`]).
//! This crate is for tests only.

pub mod exposition;
pub mod health;
pub mod jwks;
pub mod proxy;
pub mod softhsm;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A server process (`evault up`, `evault serve <role>`), killed (SIGKILL)
/// and reaped when dropped.
pub struct ServerProcess {
    child: Child,
    /// Where it said it listens: `http://host:port`, or `https://host:port`
    /// under TLS.
    pub url: String,
    /// Kept open: a server whose output pipe closes would die writing.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Spawns `command` and waits for it to print the address it listens
    /// on (the first `http://` or `https://` on a line of its standard
    /// output).
    pub fn start(command: Command) -> ServerProcess {
        ServerProcess::try_start(command).expect("server exited before listening")
    }

    /// [`ServerProcess::start`], or `None` when the server exits before it
    /// listens (as a role does while what it needs is down; a supervisor
    /// tries again).
    pub fn try_start(mut command: Command) -> Option<ServerProcess> {
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        // Owned by the server from here on, so that it is killed and
        // reaped whatever happens next.
        let mut server = ServerProcess {
            child,
            url: String::new(),
            _stdout: None,
        };
        let mut stdout = BufReader::new(server.child.stdout.take().expect("stdout"));
        let mut line = String::new();
        while server.url.is_empty() {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if let Some(at) = line.find("http://").or_else(|| line.find("https://")) {
                server.url = line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        server._stdout = Some(stdout);
        Some(server)
    }

    /// `evault up` (`program`) on a port of its own with its data in
    /// `data`, on PostgreSQL at `database_url` when given.
    pub fn up(program: &str, data: &std::path::Path, database_url: Option<&str>) -> ServerProcess {
        let mut up = command(program);
        up.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data);
        if let Some(url) = database_url {
            up.args(["--database-url", url]);
        }
        ServerProcess::start(up)
    }

    /// The address of its health port (`--health-listen`), which it says
    /// after its own address.
    pub fn health_url(&mut self) -> String {
        let stdout = self._stdout.as_mut().expect("stdout");
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap_or(0) > 0,
                "the server said no health port"
            );
            if let (true, Some(at)) = (line.contains("health"), line.find("http://")) {
                return line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
    }

    /// Its process ID, to signal it (SIGKILL, SIGSTOP) as a test's fault.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (and is reaped).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server (SIGKILL) and reaps it, now.
    pub fn kill(self) {
        drop(self);
    }

    /// Stops the server as an operator or Kubernetes does, with SIGTERM,
    /// and waits for it to exit; panics unless it exits with status 0.
    pub fn stop(mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let status = self.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "the server's exit on SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The four roles of one vault, each a process of its own (`evault serve
/// <role>`), killed and reaped when dropped.
pub struct Roles {
    /// `evault serve signer`.
    pub signer: ServerProcess,
    /// `evault serve tree`, calling the signer.
    pub tree: ServerProcess,
    /// `evault serve ingest`, calling the tree.
    pub ingest: ServerProcess,
    /// `evault serve gateway`, calling ingest and the tree.
    pub gateway: ServerProcess,
}

impl Roles {
    /// Starts the roles of `program` serving the log `origin`: the log in
    /// the database at `log_url`, the signer's record in the one at
    /// `signer_url`, signed with the key file `key`; ingest and the
    /// gateway verify callers' tokens against the local issuer in `issuer`
    /// (`evault token --data-dir ISSUER`). Each listens on a port of its
    /// own; `configure` adds what a test needs to each role's command
    /// (TLS flags, environment), given the role's name.
    pub fn start(
        program: &str,
        origin: &str,
        (log_url, signer_url): (&str, &str),
        key: &std::path::Path,
        issuer: &std::path::Path,
        configure: impl Fn(&str, &mut Command),
    ) -> Roles {
        let jwks = issuer.join("jwks.json");
        let identity = [
            "--jwks-file".as_ref(),
            jwks.as_os_str(),
            "--jwt-issuer".as_ref(),
            "evault-local".as_ref(),
            "--jwt-audience".as_ref(),
            "evault".as_ref(),
        ];
        let serve = |role: &str, url: &str, args: &[&std::ffi::OsStr]| {
            let mut serve = command(program);
            serve
                .args(["serve", role, "--database-url", url, "--origin", origin])
                .args(["--listen", "127.0.0.1:0"])
                .args(args);
            configure(role, &mut serve);
            ServerProcess::start(serve)
        };
        let signer = serve(
            "signer",
            signer_url,
            &["--key-file".as_ref(), key.as_os_str()],
        );
        let tree = serve("tree", log_url, &["--signer".as_ref(), signer.url.as_ref()]);
        let ingest = serve(
            "ingest",
            log_url,
            &[&["--tree".as_ref(), tree.url.as_ref()][..], &identity].concat(),
        );
        let gateway = serve(
            "gateway",
            log_url,
            &[
                &[
                    "--ingest".as_ref(),
                    ingest.url.as_ref(),
                    "--tree".as_ref(),
                    tree.url.as_ref(),
                ][..],
                &identity,
            ]
            .concat(),
        );
        Roles {
            signer,
            tree,
            ingest,
            gateway,
        }
    }
}

/// `program` (a binary of the workspace: `env!("CARGO_BIN_EXE_evault")`)
/// without any of the test's own `EVAULT_*` variables, so that only the
/// flags a test gives configure it, and logging warnings only.
pub fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("EVAULT_") {
            command.env_remove(var);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// The standard output of a command that had to succeed; a failure panics
/// with both of its outputs.
pub fn succeeded(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The database tests use: `DATABASE_URL`, or the machine's local cluster.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL schema of one test's own.
pub struct PgSchema {
    /// The schema's name.
    pub name: String,
    /// A database URL whose sessions see only this schema.
    pub url: String,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (set DATABASE_URL): {e}"));
    tokio::spawn(connection);
    client
}

impl PgSchema {
    /// Creates a fresh, empty schema named after `prefix`.
    pub async fn create(prefix: &str) -> PgSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = database_url();
        connect(&base)
            .await
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { name, url }
    }

    /// [`PgSchema::create`], for tests without a runtime of their own.
    pub fn create_blocking(prefix: &str) -> PgSchema {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(Self::create(prefix))
    }

    /// [`PgSchema::drop_schema`], for tests without a runtime of their own.
    pub fn drop_blocking(self) {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(self.drop_schema());
    }

    /// Drops the schema and all it holds.
    pub async fn drop_schema(self) {
        connect(&database_url())
            .await
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}
