//! The placer's edge: what runs jobs and remembers them.
//!
//! The pure placer (`switchyard-placer`) decides; this crate does the IO. [`engine::Engine`] is
//! the one trait every engine implements: the local engine runs jobs as processes against
//! logical GPU pools (no services needed), and the Ray engine drives Ray clusters through the
//! Jobs REST API. [`store::Store`] keeps jobs, attempts and blocks in SQLite, so a restarted
//! `switchyard` picks its jobs up again. [`runner::Placer`] is the loop: plan, provision, block
//! what failed and re-plan; supervise running jobs and re-place them from their checkpoints.

pub mod engine;
pub mod local;
pub mod progress;
pub mod ray;
pub mod runner;
pub mod store;

pub use engine::{AnyEngine, Engine, Launch, RunState};
pub use progress::Progress;
pub use runner::Placer;
pub use store::Store;

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_core::Time;

/// The wall clock as the placer's [`Time`]: microseconds since the Unix epoch.
pub fn wall_clock() -> Time {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    Time(u64::try_from(micros).unwrap_or(u64::MAX))
}
