//! Switchyard's pure core: the domain model, config validation and every routing decision.
//!
//! Nothing here does IO, reads a clock or spawns a task: the current time ([`Time`]) and the
//! randomness ([`Rng`]) are arguments, so the gateway, the simulator and the tests all drive the
//! same code and get the same answers from the same inputs.

pub mod attempt;
pub mod calendar;
pub mod config;
pub mod counters;
pub mod estimator;
pub mod fixture;
pub mod health;
pub mod lifecycle;
pub mod plan;
pub mod retry_budget;
pub mod rng;
pub mod signals;
pub mod state;
pub mod tenancy;
pub mod time;
pub mod usage;

pub use attempt::{AttemptError, Decision};
pub use config::{Config, ConfigError, DeploymentId};
pub use plan::{NoRoute, Plan, PlanRequest};
pub use rng::{Rng, SplitMix64};
pub use state::RouterState;
pub use time::Time;
