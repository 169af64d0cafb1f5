//! Instruction counts of the core's hot paths under callgrind (gungraun): deterministic, so CI
//! can guard them with hard limits on a noisy shared machine. Limits leave ~30% headroom over
//! the counts measured when they were set (see docs/benchmarks.md).

use std::hint::black_box;

use gungraun::{Callgrind, EventKind, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use switchyard_core::config::Config;
use switchyard_core::fixture::{attempt_cycle, bench_request, synthetic_config};
use switchyard_core::plan::{Plan, plan};
use switchyard_core::{RouterState, SplitMix64, Time};

fn setup(n: usize) -> (Config, RouterState) {
    let config = synthetic_config(n, "balanced");
    let state = RouterState::new(&config, Time::ZERO);
    (config, state)
}

fn limit(instructions: u64) -> LibraryBenchmarkConfig {
    let mut config = LibraryBenchmarkConfig::default();
    config.tool(Callgrind::default().hard_limits([(EventKind::Ir, instructions)]));
    config
}

#[library_benchmark]
#[bench::deployments_8(args = (8), setup = setup, config = limit(7_000))]
#[bench::deployments_64(args = (64), setup = setup, config = limit(52_000))]
fn plan_request(input: (Config, RouterState)) -> Plan {
    let (config, state) = input;
    let request = bench_request(&config);
    let result = plan(
        black_box(&config),
        black_box(&state),
        black_box(&request),
        Time::from_millis(1_000),
        &mut SplitMix64::new(1),
    );
    // Tearing the fixture down is not what is measured.
    std::mem::forget((config, state));
    match result {
        Ok(p) => black_box(p),
        Err(e) => panic!("{e}"),
    }
}

#[library_benchmark]
#[bench::one(args = (8), setup = setup, config = limit(1_150))]
fn attempt_updates(input: (Config, RouterState)) -> RouterState {
    let (config, state) = input;
    attempt_cycle(&state, black_box(config.deployments[3].id), Time::from_millis(1_000));
    std::mem::forget(config);
    black_box(state)
}

library_benchmark_group!(name = core, benchmarks = [plan_request, attempt_updates]);

main!(library_benchmark_groups = core);
