//! Wall-clock micro-benchmarks of the pure core: planning over 8 and 64 deployments, and the
//! per-attempt state updates (health, estimators, rate buckets).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_core::fixture::{attempt_cycle, bench_request, synthetic_config};
use switchyard_core::plan::plan;
use switchyard_core::{RouterState, SplitMix64, Time};

fn bench_plan(c: &mut Criterion) {
    for n in [8usize, 64] {
        for policy in ["balanced", "cost"] {
            let config = synthetic_config(n, policy);
            let state = RouterState::new(&config, Time::ZERO);
            let request = bench_request(&config);
            let mut rng = SplitMix64::new(1);
            let now = Time::from_millis(1_000);
            c.bench_function(&format!("plan/{n}/{policy}"), |b| {
                b.iter(|| plan(black_box(&config), black_box(&state), black_box(&request), now, &mut rng))
            });
        }
    }
}

fn bench_updates(c: &mut Criterion) {
    let config = synthetic_config(8, "balanced");
    let state = RouterState::new(&config, Time::ZERO);
    let id = config.deployments[3].id;
    let mut t = 0u64;
    c.bench_function("attempt/begin+end success", |b| {
        b.iter(|| {
            t += 1_000;
            attempt_cycle(&state, black_box(id), Time::from_micros(t));
        })
    });
}

criterion_group!(benches, bench_plan, bench_updates);
criterion_main!(benches);
