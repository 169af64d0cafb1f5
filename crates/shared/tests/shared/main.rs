//! `switchyard-shared` (allowances, budgets, deployment signals and gauges) against real Redis servers,
//! started on free loopback ports from the system's `redis-server` (skipped, saying so, when it
//! is missing, unless `SWITCHYARD_REQUIRE_SERVICES=1`). The startup checks need no server.

mod boundary;
mod budget_outage;
mod budgets;
mod common;
mod gauges;
mod keys;
mod limit;
mod outage;
mod script;
mod settle;
mod signals;
mod signals_outage;
mod startup;
