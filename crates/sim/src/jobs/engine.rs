//! The job simulator's event loop: arrivals, placements through the placer's `plan`, runs that
//! finish or are preempted (spot, drawn from the configured interruption rate), capacity
//! crunches, and the bookkeeping for the report. Virtual time; seeded; no IO.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use switchyard_core::Time;
use switchyard_core::rng::{Rng, SplitMix64, stable_hash};
use switchyard_placer::catalog::PriceKind;
use switchyard_placer::{Candidate, Failure, FailureClass, JobSpec, Plan, Snapshot, plan};

use super::report::{JobReport, PolicyResult, summarise};
use super::scenario::JobScenario;

/// How the simulated placer picks among the candidates the optimizer leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobPolicy {
    /// The placer as shipped: workload preferences, reservations, commitment shadow prices,
    /// spot risk.
    Ours,
    /// The lowest list price per job, ignoring preferences, reservations and commitments.
    CheapestList,
    /// Only one cloud, ranked as ours.
    SingleCloud(String),
}

impl JobPolicy {
    pub fn parse(text: &str, scenario: &JobScenario) -> Result<JobPolicy, String> {
        match text {
            "ours" => Ok(JobPolicy::Ours),
            "cheapest" => Ok(JobPolicy::CheapestList),
            _ => match text.strip_prefix("single:") {
                Some(cloud) if scenario.placer.clouds.iter().any(|c| c == cloud) => {
                    Ok(JobPolicy::SingleCloud(cloud.to_owned()))
                }
                _ => Err(format!("unknown job policy {text:?} (expected ours, cheapest or single:CLOUD)")),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            JobPolicy::Ours => "ours".to_owned(),
            JobPolicy::CheapestList => "cheapest-list".to_owned(),
            JobPolicy::SingleCloud(c) => format!("single:{c}"),
        }
    }

    fn pick(&self, scenario: &JobScenario, plan: &Plan) -> Option<Candidate> {
        match self {
            JobPolicy::Ours => plan.best().cloned(),
            JobPolicy::SingleCloud(cloud) => plan.ranked.iter().find(|c| c.cloud == *cloud).cloned(),
            JobPolicy::CheapestList => {
                let list = |c: &Candidate| {
                    let o = scenario.placer.offering(&c.offering);
                    let hourly = o.and_then(|o| o.list_usd_per_hour.or(o.usd_per_hour)).unwrap_or(c.usd_per_hour);
                    hourly * f64::from(c.instances) * c.expected.as_secs_f64()
                };
                plan.ranked
                    .iter()
                    .min_by(|a, b| list(a).total_cmp(&list(b)).then_with(|| a.offering.cmp(&b.offering)))
                    .cloned()
            }
        }
    }
}

/// One job as the simulator tracks it.
pub(super) struct SimJob {
    pub(super) spec: JobSpec,
    pub(super) arrival: Time,
    pub(super) remaining: Duration,
    pub(super) first_start: Option<Time>,
    pub(super) preemptions: u32,
    pub(super) done: bool,
    pub(super) unplaceable: bool,
}

/// A job running on a candidate until `end`.
pub(super) struct Run {
    pub(super) job: usize,
    pub(super) c: Candidate,
    pub(super) start: Time,
    pub(super) end: Time,
    pub(super) preempted: bool,
}

/// What a run cost and where, accumulated per policy.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) spend: f64,
    pub(super) gpu_hours: BTreeMap<String, f64>,
    pub(super) commitment_spend: BTreeMap<String, f64>,
    pub(super) reserved_gpu_hours: f64,
    pub(super) outside_jurisdiction: u64,
}

/// The jobs that arrive, the same for every policy.
fn arrivals(scenario: &JobScenario, seed: u64) -> Vec<SimJob> {
    let mut rng = SplitMix64::new(seed ^ stable_hash(b"job-arrivals"));
    let total_share: f64 = scenario.mix.iter().map(|k| k.share).sum();
    let mut t = scenario.start;
    let mut jobs = Vec::new();
    loop {
        let gap_days = -(1.0 - rng.next_f64()).ln() / scenario.arrivals_per_day;
        t = t + Duration::from_secs_f64(gap_days * 86_400.0);
        if t >= scenario.end() {
            return jobs;
        }
        let mut pick = rng.next_f64() * total_share;
        let kind = scenario.mix.iter().find(|k| {
            pick -= k.share;
            pick < 0.0
        });
        let kind = kind.unwrap_or(&scenario.mix[scenario.mix.len() - 1]);
        let nodes = kind.nodes.0 + rng.below((kind.nodes.1 - kind.nodes.0 + 1) as usize) as u32;
        let hours = kind.hours.0 + rng.next_f64() * (kind.hours.1 - kind.hours.0);
        let work = Duration::from_secs((hours * 3_600.0).round().max(60.0) as u64);
        let mut spec = serde_json::json!({
            "name": format!("{}-{}", kind.name, jobs.len() + 1),
            "accelerators": format!("{}:{}", kind.accelerator, kind.per_node),
            "nodes": nodes,
            "duration": format!("{}s", work.as_secs()),
            "jurisdictions": kind.jurisdictions,
            "workload": kind.workload.as_str(),
            "spot": kind.spot,
            "run": "simulated",
        });
        if let Some(every) = kind.checkpoint_every {
            spec["checkpoint"] = serde_json::json!({ "resume": "simulated", "every": format!("{}s", every.as_secs()) });
        }
        let Ok(spec) = JobSpec::from_value(spec) else { continue };
        jobs.push(SimJob {
            spec,
            arrival: t,
            remaining: work,
            first_start: None,
            preemptions: 0,
            done: false,
            unplaceable: false,
        });
    }
}

/// Runs every policy over the scenario with one seed.
pub fn simulate(scenario: &JobScenario, policies: &[JobPolicy], seed: u64) -> JobReport {
    let results = policies.iter().map(|p| run_policy(scenario, p, seed)).collect();
    JobReport::new(scenario, seed, results)
}

/// A policy's run: the jobs, what the placer sees, what is running, and the tallies.
struct World<'a> {
    scenario: &'a JobScenario,
    policy: &'a JobPolicy,
    jobs: Vec<SimJob>,
    snapshot: Snapshot,
    tally: Tally,
    queue: VecDeque<usize>,
    running: Vec<Run>,
    rng: SplitMix64,
}

fn run_policy(scenario: &JobScenario, policy: &JobPolicy, seed: u64) -> PolicyResult {
    let mut w = World {
        scenario,
        policy,
        jobs: arrivals(scenario, seed),
        snapshot: Snapshot::default(),
        tally: Tally::default(),
        queue: VecDeque::new(),
        running: Vec::new(),
        rng: SplitMix64::new(seed ^ stable_hash(b"preemptions")),
    };
    let config = &scenario.placer;
    let mut next_arrival = 0;
    let end = scenario.end();
    loop {
        let next_end = w.running.iter().enumerate().min_by_key(|(_, r)| (r.end, r.job)).map(|(i, r)| (i, r.end));
        let arrival_at = w.jobs.get(next_arrival).map(|j| j.arrival);
        let now = match (arrival_at, next_end) {
            (Some(a), Some((_, e))) => a.min(e),
            (Some(a), None) => a,
            (None, Some((_, e))) => e,
            (None, None) => break,
        };
        if now >= end {
            break;
        }
        if arrival_at == Some(now) && next_end.is_none_or(|(_, e)| now <= e) {
            if plan(config, &Snapshot::default(), &w.jobs[next_arrival].spec, now).best().is_none() {
                w.jobs[next_arrival].unplaceable = true;
            } else {
                w.queue.push_back(next_arrival);
            }
            next_arrival += 1;
        } else if let Some((i, _)) = next_end {
            let run = w.running.swap_remove(i);
            w.finish(&run, run.end);
            if run.preempted {
                if let Some(o) = config.offering(&run.c.offering) {
                    w.snapshot.blocks.record(
                        &Failure::new(FailureClass::Preempted, "spot reclaimed"),
                        o,
                        now,
                        &config.blocks,
                    );
                }
                w.queue.push_back(run.job);
            }
        }
        w.place_queued(now);
    }
    for run in std::mem::take(&mut w.running) {
        w.finish(&run, end);
    }
    summarise(scenario, policy, &w.jobs, &w.tally, end)
}

impl World<'_> {
    /// Books a run segment up to `at`: its spend, GPU-hours and commitment burn; frees its
    /// capacity; a completed run completes its job, a preempted one keeps the work up to its
    /// last checkpoint. A run cut by the end of the simulation does neither.
    fn finish(&mut self, run: &Run, at: Time) {
        let hours = at.saturating_since(run.start).as_secs_f64() / 3_600.0;
        let cost = run.c.usd_per_hour * f64::from(run.c.instances) * hours;
        self.tally.spend += cost;
        *self.tally.gpu_hours.entry(run.c.cloud.clone()).or_default() += f64::from(run.c.gpus) * hours;
        if let Some(c) = &run.c.commitment {
            *self.tally.commitment_spend.entry(c.clone()).or_default() += cost;
            *self.snapshot.commitment_spent.entry(c.clone()).or_default() += cost;
        }
        if let Some(used) = self.snapshot.pools.get_mut(&run.c.pool) {
            used.used = used.used.saturating_sub(run.c.gpus);
        }
        if run.c.kind == PriceKind::Reserved {
            self.tally.reserved_gpu_hours += f64::from(run.c.gpus) * hours;
            if let Some(held) = self.snapshot.reserved_used.get_mut(&run.c.offering) {
                *held = held.saturating_sub(run.c.gpus);
            }
        }
        if at < run.end {
            return;
        }
        let restart = self.scenario.placer.spot.restart;
        let job = &mut self.jobs[run.job];
        if !run.preempted {
            job.done = true;
            return;
        }
        let ran = at.saturating_since(run.start);
        let saved = match &job.spec.checkpoint {
            Some(c) if !c.every.is_zero() => c.every * (ran.as_secs() / c.every.as_secs().max(1)) as u32,
            _ => Duration::ZERO,
        };
        job.remaining = job.remaining.saturating_sub(saved) + restart;
        job.preemptions += 1;
    }

    /// Tries to place every waiting job, in arrival order, through the policy.
    fn place_queued(&mut self, now: Time) {
        let config = &self.scenario.placer;
        for pool in &config.pools {
            let crunch =
                self.scenario.crunches.iter().find(|c| c.cloud == pool.key.cloud && c.from <= now && now < c.until);
            let entry = self.snapshot.pools.entry(pool.key.clone()).or_default();
            entry.live_free = match (crunch, pool.capacity) {
                (Some(c), Some(cap)) => Some(((f64::from(cap) * c.share).floor() as u32).saturating_sub(entry.used)),
                _ => None,
            };
        }
        let mut waiting = VecDeque::new();
        while let Some(i) = self.queue.pop_front() {
            let mut spec = self.jobs[i].spec.clone();
            spec.duration = self.jobs[i].remaining;
            let p = plan(config, &self.snapshot, &spec, now);
            let Some(c) = self.policy.pick(self.scenario, &p) else {
                waiting.push_back(i);
                continue;
            };
            if !spec.allows(&c.jurisdiction) {
                self.tally.outside_jurisdiction += 1;
            }
            let start_delay = config.pool(&c.pool).map_or(Duration::ZERO, |p| p.start);
            let mut end = now + start_delay + self.jobs[i].remaining;
            let mut preempted = false;
            if c.kind == PriceKind::Spot {
                let rate = config.spot.rate(&c.cloud);
                if rate > 0.0 {
                    let after = Duration::from_secs_f64(-(1.0 - self.rng.next_f64()).ln() / rate * 3_600.0);
                    if now + start_delay + after < end {
                        end = now + start_delay + after;
                        preempted = true;
                    }
                }
            }
            let entry = self.snapshot.pools.entry(c.pool.clone()).or_default();
            entry.used += c.gpus;
            if let Some(free) = entry.live_free.as_mut() {
                *free = free.saturating_sub(c.gpus);
            }
            if c.kind == PriceKind::Reserved {
                *self.snapshot.reserved_used.entry(c.offering.clone()).or_default() += c.gpus;
            }
            self.jobs[i].first_start.get_or_insert(now);
            self.running.push(Run { job: i, c, start: now, end, preempted });
        }
        self.queue = waiting;
    }
}
