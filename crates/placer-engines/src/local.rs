//! The local engine: each attempt is a process group on this machine, holding logical GPUs of a
//! pool declared in the config (`CUDA_VISIBLE_DEVICES` names them). Everything it knows lives in
//! files under its directory, so a restarted `switchyard` finds its jobs: a record per attempt
//! (pool, GPUs, pid), the exit status the wrapper writes, and a marker when we stopped it.
//!
//! A process group that disappears without an exit status was killed: the engine reports it as
//! gone, which the placer treats like a lost node (re-placed, resumed from its checkpoint).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_placer::catalog::PoolKey;
use switchyard_placer::{Failure, FailureClass};

use crate::engine::{Engine, EngineError, Launch, RunState};

/// Runs the job's command, then writes its exit status atomically.
const WRAPPER: &str = r#"cmd=$SWITCHYARD_COMMAND; unset SWITCHYARD_COMMAND
sh -c "$cmd"; code=$?
printf '%s\n' "$code" > "$SWITCHYARD_EXIT_FILE.tmp" && mv "$SWITCHYARD_EXIT_FILE.tmp" "$SWITCHYARD_EXIT_FILE""#;

pub struct LocalEngine {
    dir: PathBuf,
    /// Logical GPUs per pool.
    pools: BTreeMap<PoolKey, u32>,
    /// Children started by this process, reaped when their status is read.
    children: Mutex<HashMap<String, Child>>,
}

/// What the engine keeps of one attempt: `<dir>/<id>.record`, one `key=value` per line.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    pool: String,
    gpus: Vec<u32>,
    pid: u32,
    /// The process's start time in clock ticks (from `/proc`), so a reused pid is not mistaken
    /// for our job.
    start: u64,
    log: PathBuf,
}

impl Record {
    fn to_text(&self) -> String {
        let gpus: Vec<String> = self.gpus.iter().map(u32::to_string).collect();
        format!(
            "pool={}\ngpus={}\npid={}\nstart={}\nlog={}\n",
            self.pool,
            gpus.join(","),
            self.pid,
            self.start,
            self.log.display()
        )
    }

    fn parse(text: &str) -> Option<Record> {
        let fields: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let gpus = fields.get("gpus")?;
        Some(Record {
            pool: (*fields.get("pool")?).to_owned(),
            gpus: if gpus.is_empty() {
                Vec::new()
            } else {
                gpus.split(',').map(str::parse).collect::<Result<_, _>>().ok()?
            },
            pid: fields.get("pid")?.parse().ok()?,
            start: fields.get("start")?.parse().ok()?,
            log: PathBuf::from(fields.get("log")?),
        })
    }
}

fn io_failure(what: &str, e: std::io::Error) -> EngineError {
    EngineError(Failure::new(FailureClass::Unreachable, format!("local engine: {what}: {e}")))
}

/// `(state, start time)` of a live process from `/proc/<pid>/stat`; `None` when it is gone.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

fn alive(record: &Record) -> bool {
    matches!(proc_stat(record.pid), Some((state, start)) if state != 'Z' && state != 'X' && start == record.start)
}

fn signal_group(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl LocalEngine {
    /// An engine keeping its files under `dir`, with `pools` of logical GPUs.
    pub fn new(dir: PathBuf, pools: BTreeMap<PoolKey, u32>) -> std::io::Result<LocalEngine> {
        std::fs::create_dir_all(&dir)?;
        Ok(LocalEngine { dir, pools, children: Mutex::new(HashMap::new()) })
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    fn record(&self, id: &str) -> Result<Record, EngineError> {
        let text =
            std::fs::read_to_string(self.path(id, "record")).map_err(|e| io_failure(&format!("attempt {id}"), e))?;
        Record::parse(&text)
            .ok_or_else(|| io_failure(&format!("attempt {id}"), std::io::Error::other("corrupt record")))
    }

    /// Whether the attempt has ended (exit status written, or stopped, or gone).
    fn ended(&self, id: &str, record: &Record) -> bool {
        self.reap(id);
        self.path(id, "exit").exists() || self.path(id, "stopped").exists() || !alive(record)
    }

    fn reap(&self, id: &str) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = children.get_mut(id)
            && matches!(child.try_wait(), Ok(Some(_)))
        {
            children.remove(id);
        }
    }

    /// GPU indices held in `pool` by attempts still running.
    fn held(&self, pool: &str) -> Result<Vec<u32>, EngineError> {
        let mut held = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_failure("reading its directory", e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "record") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            let Ok(record) = self.record(&id) else { continue };
            if record.pool == pool && !self.ended(&id, &record) {
                held.extend(record.gpus);
            }
        }
        Ok(held)
    }

    fn lock(&self) -> Result<std::fs::File, EngineError> {
        let file = std::fs::File::create(self.dir.join("lock")).map_err(|e| io_failure("lock file", e))?;
        file.lock().map_err(|e| io_failure("locking", e))?;
        Ok(file)
    }

    fn spawn(&self, launch: &Launch, id: &str, gpus: &[u32]) -> Result<Child, EngineError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log_path)
            .map_err(|e| io_failure("opening the log", e))?;
        let err = log.try_clone().map_err(|e| io_failure("opening the log", e))?;
        let visible: Vec<String> = gpus.iter().map(u32::to_string).collect();
        let _ = std::fs::remove_file(self.path(id, "exit"));
        std::process::Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .envs(&launch.env)
            .env("CUDA_VISIBLE_DEVICES", visible.join(","))
            .env("SWITCHYARD_COMMAND", &launch.command)
            .env("SWITCHYARD_EXIT_FILE", self.path(id, "exit"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| io_failure("starting the job", e))
    }
}

impl Engine for LocalEngine {
    async fn free(&self, pool: &PoolKey) -> Result<Option<u32>, EngineError> {
        let Some(capacity) = self.pools.get(pool) else { return Ok(None) };
        let held = self.held(&pool.to_string())?;
        Ok(Some(capacity.saturating_sub(held.len() as u32)))
    }

    async fn submit(&self, launch: &Launch) -> Result<String, EngineError> {
        let id = format!("{}.{}", launch.job_id, launch.attempt);
        let Some(&capacity) = self.pools.get(&launch.pool) else {
            return Err(EngineError(Failure::new(FailureClass::NoCapacity, format!("no local pool {}", launch.pool))));
        };
        let _lock = self.lock()?;
        let held = self.held(&launch.pool.to_string())?;
        let free: Vec<u32> = (0..capacity).filter(|g| !held.contains(g)).take(launch.gpus as usize).collect();
        if free.len() < launch.gpus as usize {
            return Err(EngineError(Failure::new(
                FailureClass::NoCapacity,
                format!(
                    "local pool {}: {} of {capacity} logical GPUs free, {} needed",
                    launch.pool,
                    capacity as usize - held.len(),
                    launch.gpus
                ),
            )));
        }
        let child = self.spawn(launch, &id, &free)?;
        let pid = child.id();
        let start = proc_stat(pid).map_or(0, |(_, start)| start);
        let record = Record { pool: launch.pool.to_string(), gpus: free, pid, start, log: launch.log_path.clone() };
        std::fs::write(self.path(&id, "record"), record.to_text()).map_err(|e| io_failure("writing the record", e))?;
        self.children.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), child);
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<RunState, EngineError> {
        let record = self.record(id)?;
        self.reap(id);
        if self.path(id, "stopped").exists() {
            return Ok(RunState::Stopped);
        }
        if let Ok(text) = std::fs::read_to_string(self.path(id, "exit")) {
            return Ok(match text.trim().parse::<i32>() {
                Ok(0) => RunState::Succeeded,
                Ok(code) => {
                    RunState::Failed { exit_code: Some(code), detail: format!("the command exited with {code}") }
                }
                Err(_) => {
                    RunState::Failed { exit_code: None, detail: format!("unreadable exit status {:?}", text.trim()) }
                }
            });
        }
        if alive(&record) {
            return Ok(RunState::Running);
        }
        Ok(RunState::Gone(format!("process group {} ended without an exit status (killed)", record.pid)))
    }

    async fn logs(&self, id: &str) -> Result<String, EngineError> {
        let record = self.record(id)?;
        Ok(tokio::fs::read_to_string(&record.log).await.unwrap_or_default())
    }

    async fn stop(&self, id: &str) -> Result<(), EngineError> {
        let record = self.record(id)?;
        if self.ended(id, &record) {
            return Ok(());
        }
        std::fs::write(self.path(id, "stopped"), "").map_err(|e| io_failure("marking the stop", e))?;
        signal_group(record.pid, "TERM");
        for _ in 0..60 {
            self.reap(id);
            if !alive(&record) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(record.pid, "KILL");
        Ok(())
    }
}

/// The directory a local engine keeps its files in, under the state directory.
pub fn dir(state: &Path) -> PathBuf {
    state.join("local")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r =
            Record { pool: "aws/us-east-1/H100".into(), gpus: vec![0, 3], pid: 42, start: 7, log: "/tmp/x.log".into() };
        assert_eq!(Record::parse(&r.to_text()), Some(r));
        assert_eq!(Record::parse("pool=x\n"), None);
    }
}
