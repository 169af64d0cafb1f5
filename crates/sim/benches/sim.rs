//! Simulator speed: simulated requests per second of wall time on the outage scenario.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_core::config::Policy;
use switchyard_sim::engine::{Engine, PolicyChoice};
use switchyard_sim::scenario::Scenario;

fn bench(c: &mut Criterion) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/cloud-outage-at-peak.yaml"))
            .expect("scenario file");
    let scenario = Scenario::from_yaml(&text).expect("valid scenario");
    let requests = Engine::new(&scenario, PolicyChoice::Core(Policy::Balanced), 1).run(&mut |_| ()).requests;
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(requests));
    group.bench_function("outage scenario, balanced", |b| {
        b.iter(|| Engine::new(&scenario, PolicyChoice::Core(Policy::Balanced), 1).run(&mut |_| ()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
