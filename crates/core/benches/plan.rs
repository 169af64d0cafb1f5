//! Wall-clock micro-benchmarks of the pure core: planning over 8 and 64 deployments, and the
//! per-attempt state updates (health, estimators, rate buckets).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_core::fixture::synthetic_config;
use switchyard_core::plan::{Needs, PlanRequest, plan};
use switchyard_core::state::Outcome;
use switchyard_core::{RouterState, SplitMix64, Time};

fn bench_plan(c: &mut Criterion) {
    for n in [8usize, 64] {
        for policy in ["balanced", "cost"] {
            let config = synthetic_config(n, policy);
            let state = RouterState::new(&config, Time::ZERO);
            let alias = config.alias("chat").unwrap().id;
            let tenant = &config.tenants[0];
            let request = PlanRequest {
                alias,
                tenant,
                input_tokens: 500,
                max_output_tokens: Some(200),
                needs: Needs { streaming: true, ..Needs::default() },
                min_context_above: 0,
                avoid: None,
            };
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
    let mut state = RouterState::new(&config, Time::ZERO);
    let id = config.deployments[3].id;
    let mut t = 0u64;
    c.bench_function("attempt/begin+end success", |b| {
        b.iter(|| {
            t += 1_000;
            let now = Time::from_micros(t);
            state.on_request(now);
            state.begin_attempt(id, 700, now);
            let outcome = Outcome::Success {
                ttft: Some(Duration::from_millis(120)),
                duration: Duration::from_millis(900),
                output_tokens: 150,
                total_tokens: 650,
            };
            state.end_attempt(black_box(id), 700, outcome, now);
        })
    });
}

criterion_group!(benches, bench_plan, bench_updates);
criterion_main!(benches);
