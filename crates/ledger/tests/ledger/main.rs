//! The ledger's tests, in one binary so they share one PostgreSQL server: every test that
//! touches a database runs on SQLite and on PostgreSQL through [`common::each_backend`].

mod common;
mod crash;
mod keys;
mod open;
mod pending;
mod store;
mod writer;
