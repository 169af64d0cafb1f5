//! `switchyard-shared` against real Redis servers, started on free loopback ports from the
//! system's `redis-server` (skipped, saying so, when it is missing, unless
//! `SWITCHYARD_REQUIRE_SERVICES=1`). The startup checks need no server.

mod common;
mod limit;
mod outage;
mod settle;
mod startup;
