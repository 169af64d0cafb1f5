//! Test support (a dev-dependency only): real PostgreSQL and Redis servers, started from the
//! system's binaries on free loopback ports, and temporary directories, each behind a guard that
//! cleans up on drop.
//!
//! A missing binary is not a failure: [`postgres`] and [`redis`] print `skipping: <why>` to
//! stderr and return `None`, and the test returns early. With `SWITCHYARD_REQUIRE_SERVICES=1`
//! (CI) they panic with the reason instead, so a missing package fails the run rather than
//! silently skipping its tests.
//!
//! Each server also gets a watchdog: a `sh` process that waits for its standard input (a pipe
//! from the test process) to close, then stops the server and removes its directory. So a server
//! kept in a `static`, which is never dropped, or one whose test process was killed, does not
//! outlive the test process.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set to `1` to turn a missing service into a panic instead of a skipped test.
pub const REQUIRE_ENV: &str = "SWITCHYARD_REQUIRE_SERVICES";

/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory under the system's temporary directory, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

/// A PostgreSQL server on 127.0.0.1, with trust authentication and a database `switchyard`.
/// Stopped, and its data removed, on drop.
pub struct Postgres {
    port: u16,
    pg_ctl: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    watchdog: Watchdog,
    dir: TempDir,
}

/// A Redis server on 127.0.0.1 with persistence off. Stopped on drop.
pub struct Redis {
    port: u16,
    child: Child,
    watchdog: Watchdog,
    _dir: TempDir,
}

/// The `sh` that cleans up after a server once the test process's end closes its stdin.
struct Watchdog {
    stdin: Option<ChildStdin>,
    child: Child,
}

/// Returns `None` after printing why, or panics when services are required.
pub fn unavailable<T>(reason: &str) -> Option<T> {
    if std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1") {
        panic!("{reason} ({REQUIRE_ENV}=1, so this is not skipped)");
    }
    eprintln!("skipping: {reason}");
    None
}

/// A loopback port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Starts a PostgreSQL server, or says why it cannot ([`unavailable`]).
///
/// Finds `initdb`, `pg_ctl` and `postgres` together on `PATH` or in `/usr/lib/postgresql/*/bin`.
/// PostgreSQL refuses to run as root, so as root every step runs as the `postgres` user (through
/// `runuser`), in a directory it owns. The server keeps `fsync` on: what it acknowledged as
/// committed survives, as in production.
pub fn postgres() -> Option<Postgres> {
    match start_postgres() {
        Ok(pg) => Some(pg),
        Err(reason) => unavailable(&format!("PostgreSQL: {reason}")),
    }
}

/// Starts a Redis server, or says why it cannot ([`unavailable`]).
pub fn redis() -> Option<Redis> {
    match start_redis() {
        Ok(redis) => Some(redis),
        Err(reason) => unavailable(&format!("Redis: {reason}")),
    }
}

// === impl TempDir ===

impl TempDir {
    /// A new empty directory, named after `prefix`.
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// === impl Postgres ===

impl Postgres {
    /// `postgres://postgres@127.0.0.1:PORT/switchyard`.
    pub fn url(&self) -> String {
        self.url_for("switchyard")
    }

    /// The URL of database `db` on this server (`postgres` always exists).
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = command(self.run_as, &self.pg_ctl);
        stop.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "-t", "10", "stop"]);
        let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        self.watchdog.disarm();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

fn start_postgres() -> Result<Postgres, String> {
    let bin = postgres_bin().ok_or("initdb, pg_ctl and postgres not found on PATH or in /usr/lib/postgresql/*/bin")?;
    let run_as = match euid() {
        Some(0) => Some("postgres"),
        _ => None,
    };
    let dir = TempDir::new("switchyard-pg").map_err(|e| format!("temporary directory: {e}"))?;
    if let Some(user) = run_as {
        let (uid, gid) = user_ids(user).ok_or("running as root, and there is no `postgres` user to run it as")?;
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))?;
    }
    let data = dir.path().join("data");
    let mut initdb = command(run_as, &bin.join("initdb"));
    initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
    run(&mut initdb, None).map_err(|e| format!("initdb: {e}"))?;
    let mut single = command(run_as, &bin.join("postgres"));
    single.arg("--single").arg("-D").arg(&data).arg("postgres");
    let out = run(&mut single, Some("CREATE DATABASE switchyard;\n")).map_err(|e| format!("postgres --single: {e}"))?;
    if out.contains("ERROR") {
        return Err(format!("CREATE DATABASE: {out}"));
    }
    let log = dir.path().join("server.log");
    let pg_ctl = bin.join("pg_ctl");
    let mut last = String::new();
    // A port found free can be taken before the server binds it: try another.
    for _ in 0..3 {
        let port = free_port();
        let options = format!("-h 127.0.0.1 -p {port} -k {}", dir.path().display());
        let mut start = command(run_as, &pg_ctl);
        start.arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "30", "-o", &options, "start"]);
        match run(&mut start, None) {
            Ok(_) => {
                wait_until(|| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok())
                    .map_err(|()| "the server did not accept connections".to_owned())?;
                let stop = format!(
                    "{} -D {} -m immediate stop; rm -rf {}",
                    shell_command(run_as, &pg_ctl),
                    quote(&data.display().to_string()),
                    quote(&dir.path().display().to_string()),
                );
                let watchdog = Watchdog::spawn(&stop).map_err(|e| format!("watchdog: {e}"))?;
                return Ok(Postgres { port, pg_ctl, data, run_as, watchdog, dir });
            }
            Err(e) => last = format!("pg_ctl start: {e}; log: {}", std::fs::read_to_string(&log).unwrap_or_default()),
        }
    }
    Err(last)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, preferring `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    // Newest first: "9.6" < "15" needs a numeric compare.
    versions.sort_by_key(|p| {
        let version = p.parent().and_then(Path::file_name).and_then(|v| v.to_str()).unwrap_or("");
        std::cmp::Reverse(version.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
    });
    on_path.into_iter().chain(versions).find(|d| has_all(d))
}

// === impl Redis ===

impl Redis {
    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.watchdog.disarm();
    }
}

fn start_redis() -> Result<Redis, String> {
    let bin = find_on_path("redis-server")
        .or_else(|| Some(PathBuf::from("/usr/bin/redis-server")).filter(|p| p.is_file()))
        .ok_or("redis-server not found on PATH or in /usr/bin")?;
    let dir = TempDir::new("switchyard-redis").map_err(|e| format!("temporary directory: {e}"))?;
    let log = dir.path().join("redis.log");
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let up = wait_until(|| {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            ping(port)
        });
        if up.is_ok() && ping(port) {
            let watchdog = Watchdog::spawn(&format!("kill -9 {}", child.id())).map_err(|e| format!("watchdog: {e}"))?;
            return Ok(Redis { port, child, watchdog, _dir: dir });
        }
        let _ = child.kill();
        let _ = child.wait();
        last = format!("did not answer PING; log: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    Err(last)
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

// === impl Watchdog ===

impl Watchdog {
    /// Runs `script` with `sh` once the pipe to its stdin closes, that is when this process
    /// ends, however it ends (unless [`Watchdog::disarm`]ed first).
    fn spawn(script: &str) -> std::io::Result<Watchdog> {
        let mut child = Command::new("sh")
            .args(["-c", &format!("cat >/dev/null; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Watchdog { stdin: child.stdin.take(), child })
    }

    /// Stops the watchdog without running its script: the guard has cleaned up already.
    fn disarm(&mut self) {
        let _ = self.child.kill();
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `program`, run as `user` through `runuser` when one is given.
fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn shell_command(user: Option<&str>, program: &Path) -> String {
    let program = quote(&program.display().to_string());
    match user {
        Some(user) => format!("runuser -u {} -- {program}", quote(user)),
        None => program,
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `cmd` to completion (feeding it `input`), returning its output, or an error with it.
fn run(cmd: &mut Command, input: Option<&str>) -> Result<String, String> {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.success() {
        true => Ok(text),
        false => Err(format!("{}: {text}", out.status)),
    }
}

/// Polls `ready` every 50 ms for up to [`START_TIMEOUT`].
fn wait_until(mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// This process's effective uid: the owner of `/proc/self`.
fn euid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `user`'s uid and gid, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        let (_, uid, gid) = (fields.next()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
        Some((uid, gid))
    })
}
