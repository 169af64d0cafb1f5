//! Helpers: a clock in the core's `Time`, direct reads of Redis, a Redis server this test owns
//! (to restart one on the same port, which `switchyard-testkit` does not offer), and polling.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use switchyard_core::Time;
use switchyard_core::counters::LimitSpec;
use switchyard_core::tenancy::{BudgetSpec, Calendar, Period, days_from_civil};

/// The core's time, from one epoch every replica in a test shares, and the Unix time (ms) then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant, i64);

impl Clock {
    pub(crate) fn new() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Clock(Instant::now(), unix)
    }

    pub(crate) fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// The Unix time (ms) at this clock's zero.
    pub(crate) fn unix_ms_at_start(&self) -> i64 {
        self.1
    }
}

pub(crate) fn spec(name: &str, per_minute: f64) -> LimitSpec {
    LimitSpec { name: name.to_owned(), per_minute }
}

pub(crate) fn budget(name: &str, period: Period, usd: f64) -> BudgetSpec {
    BudgetSpec { name: name.to_owned(), period, usd }
}

/// A calendar whose `Time::ZERO` is the given UTC date and time of day (in ms).
pub(crate) fn calendar_at(year: i64, month: u32, day: u32, ms_of_day: i64) -> Calendar {
    Calendar { unix_ms_at_zero: days_from_civil(year, month, day) * 86_400_000 + ms_of_day }
}

/// A budget window's use as Redis stored it (with its floor), and the key's TTL in ms, if the
/// key exists.
pub(crate) fn remote_used(url: &str, key: &str) -> anyhow::Result<Option<(f64, i64)>> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let (used, lift): (Option<String>, Option<String>) =
        redis::cmd("HMGET").arg(key).arg("used").arg("lift").query(&mut con)?;
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con)?;
    let number = |v: Option<String>| v.map(|v| v.parse::<f64>().context("a number")).transpose();
    let (used, lift) = (number(used)?, number(lift)?);
    Ok(used.or(lift.map(|_| 0.0)).map(|u| (u + lift.unwrap_or(0.0).max(0.0), ttl)))
}

/// An allowance's level as Redis stored it (not refilled since), if it exists.
pub(crate) fn remote_level(url: &str, key: &str) -> anyhow::Result<Option<f64>> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let level: Option<String> = redis::cmd("HGET").arg(key).arg("level").query(&mut con)?;
    level.map(|l| l.parse::<f64>().context("level")).transpose()
}

/// Polls `ready` every 10 ms until it holds or `within` passes.
pub(crate) fn wait_for(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ready()
}

/// A current-thread runtime for a test's async steps.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A Redis server on a port chosen by the test (persistence off), killed on drop.
pub(crate) struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    /// Starts `redis-server` on `port`, as `switchyard-testkit` finds it.
    pub(crate) fn start(port: u16) -> anyhow::Result<OwnRedis> {
        let bin = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("redis-server")).find(|p| p.is_file()))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server")?;
        let server = OwnRedis { child };
        if !wait_for(Duration::from_secs(10), || ping(port)) {
            bail!("redis-server on port {port} did not answer PING");
        }
        Ok(server)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
