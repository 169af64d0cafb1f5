//! Why an offering was rejected: one closed list, each with a sentence for the plan table.

use std::fmt;

use switchyard_core::Time;

use crate::block::{FailureClass, Scope};
use crate::date::format_time;
use crate::job::Workload;

#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// The offering's jurisdiction is not one the job allows.
    Jurisdiction {
        jurisdiction: String,
        allowed: Vec<String>,
    },
    /// The workload's rule allows only other clouds.
    WorkloadRule {
        workload: Workload,
        only: Vec<String>,
    },
    /// A node needs more accelerators than one instance has.
    NodeTooLarge {
        per_node: u32,
        per_instance: u32,
    },
    SpotNotAllowed,
    /// A catalog reserved price, but no reservation of ours to draw on.
    NotReserved,
    /// Sold only under contract, and no negotiated price in the config.
    ContractOnly,
    /// No price known: neither the catalog nor the config has one.
    NoPrice,
    /// No pool in the config: no engine can provision it.
    NoEngine,
    Blocked {
        scope: Scope,
        class: FailureClass,
        detail: String,
        until: Time,
    },
    Quota {
        free: u32,
        need: u32,
    },
    NoCapacity {
        free: u32,
        need: u32,
    },
    ReservationEnds {
        until: Time,
    },
    /// Spot interruptions make the expected run time unreasonable.
    SpotTooRisky,
    Deadline {
        finish: Time,
        deadline: Time,
    },
}

impl Reason {
    /// A short, bounded label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Jurisdiction { .. } => "jurisdiction",
            Reason::WorkloadRule { .. } => "workload_rule",
            Reason::NodeTooLarge { .. } => "node_too_large",
            Reason::SpotNotAllowed => "spot_not_allowed",
            Reason::NotReserved => "not_reserved",
            Reason::ContractOnly => "contract_only",
            Reason::NoPrice => "no_price",
            Reason::NoEngine => "no_engine",
            Reason::Blocked { .. } => "blocked",
            Reason::Quota { .. } => "quota",
            Reason::NoCapacity { .. } => "no_capacity",
            Reason::ReservationEnds { .. } => "reservation_ends",
            Reason::SpotTooRisky => "spot_too_risky",
            Reason::Deadline { .. } => "deadline",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Jurisdiction { jurisdiction, allowed } => {
                write!(f, "outside the allowed jurisdictions: {jurisdiction} is not in [{}]", allowed.join(", "))
            }
            Reason::WorkloadRule { workload, only } => {
                write!(f, "workload rule: {workload} runs only on {}", only.join(", "))
            }
            Reason::NodeTooLarge { per_node, per_instance } => {
                write!(f, "a node needs {per_node} accelerators; an instance has {per_instance}")
            }
            Reason::SpotNotAllowed => f.write_str("spot capacity, and the job does not allow spot"),
            Reason::NotReserved => {
                f.write_str("reserved pricing, but no reservation of ours here (declare it under `reservations`)")
            }
            Reason::ContractOnly => f.write_str("sold only under contract; no negotiated price in the config"),
            Reason::NoPrice => f.write_str("no price known (add a negotiated price under `prices`)"),
            Reason::NoEngine => f.write_str("no pool declared for it in the config, so no engine can run it"),
            Reason::Blocked { scope, class, detail, until } => {
                write!(f, "blocked ({scope}) after {}: {detail}; until {}", class.as_str(), format_time(*until))
            }
            Reason::Quota { free, need } => write!(f, "quota: {free} accelerators left, the job needs {need}"),
            Reason::NoCapacity { free, need } => {
                write!(f, "no capacity: {free} accelerators free, the job needs {need}")
            }
            Reason::ReservationEnds { until } => {
                write!(f, "the reservation ends {} before the job would finish", format_time(*until))
            }
            Reason::SpotTooRisky => f.write_str("spot interruptions would make the expected run time unreasonable"),
            Reason::Deadline { finish, deadline } => {
                write!(f, "would finish {}, after the deadline {}", format_time(*finish), format_time(*deadline))
            }
        }
    }
}
