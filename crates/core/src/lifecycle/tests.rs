//! The request state machine with explicit times: no sockets, no sleeps.

use std::time::Duration;

use super::*;
use crate::config::NoSecrets;
use crate::rng::SplitMix64;

const CONFIG: &str = r#"
server:
  max_attempts: 4
  retry_after_cap_ms: 500
routing:
  retry_budget: { ratio: 0.2, min_per_second: 1, window_ms: 10000 }
clouds:
  - { name: aws, protocol: openai }
  - { name: azure, protocol: openai }
deployments:
  - { name: a1, cloud: aws, region: us-east-1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: { input_per_mtok: 1, output_per_mtok: 2 }, capabilities: { context_window: 8000, prefill: true } }
  - { name: z1, cloud: azure, region: eastus, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:2/v1", price: { input_per_mtok: 1, output_per_mtok: 2 }, capabilities: { context_window: 8000, prefill: true } }
  - { name: big, cloud: azure, region: eastus2, jurisdiction: us, model: m-long, endpoint: "http://127.0.0.1:3/v1", price: { input_per_mtok: 5, output_per_mtok: 9 }, capabilities: { context_window: 1000000 } }
aliases:
  - { name: chat, policy: priority, deployments: [a1, z1], fallbacks: [long] }
  - { name: long, policy: priority, deployments: [big] }
tenants:
  - { name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"], jurisdictions: [us], aliases: ["*"] }
"#;

struct World {
    config: Config,
    state: RouterState,
    rng: SplitMix64,
}

impl World {
    fn new() -> World {
        let config = Config::from_yaml(CONFIG, &NoSecrets).expect("valid");
        let state = RouterState::new(&config, Time::ZERO);
        World { config, state, rng: SplitMix64::new(3) }
    }

    fn ctx(&mut self) -> Ctx<'_> {
        Ctx { config: &self.config, state: &self.state, rng: &mut self.rng }
    }

    fn id(&self, name: &str) -> DeploymentId {
        self.config.deployment_by_name(name).expect("deployment").id
    }

    fn in_flight(&self) -> u32 {
        self.config.deployments.iter().map(|d| self.state.deployment(d.id).in_flight).sum()
    }
}

fn spec(world: &World, streaming: bool) -> Spec {
    Spec {
        alias: world.config.alias("chat").expect("alias").id,
        tenant: world.config.tenants[0].id,
        input_tokens: 100,
        context_tokens: None,
        max_output_tokens: Some(100),
        needs: Needs { streaming, ..Needs::default() },
        reserved_tokens: 200,
        unfit: Vec::new(),
    }
}

fn timing(hedge_after: Option<Duration>) -> Timing {
    Timing {
        deadline: at(10_000),
        first_byte: Duration::from_millis(1000),
        first_token: Duration::from_millis(2000),
        stream_idle: Duration::from_millis(500),
        after_finish: Duration::from_millis(250),
        hedge_after,
    }
}

fn at(ms: u64) -> Time {
    Time::from_millis(ms)
}

fn drain(m: &mut RequestMachine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// The attempts started among `actions`: (attempt, deployment, continuation, hedge).
fn started(actions: &[Action]) -> Vec<(AttemptId, DeploymentId, bool, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { attempt, deployment, continuation, hedge } => {
                Some((*attempt, *deployment, *continuation, *hedge))
            }
            _ => None,
        })
        .collect()
}

fn finished(actions: &[Action]) -> Option<&Finished> {
    actions.iter().find_map(|a| match a {
        Action::Finish(f) => Some(f),
        _ => None,
    })
}

#[test]
fn a_stream_runs_from_first_attempt_to_answer() {
    let mut w = World::new();
    let (a1, s) = (w.id("a1"), spec(&w, true));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let first = started(&drain(&mut m));
    assert_eq!(first.len(), 1);
    let (id, deployment, continuation, hedge) = first[0];
    assert_eq!((deployment, continuation, hedge), (a1, false, false));
    assert_eq!(m.poll_timeout(), Some(at(1000)), "first byte");
    m.on_headers(id);
    assert_eq!(m.poll_timeout(), Some(at(2000)), "first token, from the start");
    m.on_content(&mut w.ctx(), id, 3, false, at(150));
    assert_eq!(m.poll_timeout(), Some(at(650)), "stream idle");
    m.on_content(&mut w.ctx(), id, 3, false, at(300));
    m.on_finish_reason(id, at(320));
    assert_eq!(m.poll_timeout(), Some(at(570)), "after-finish grace");
    m.on_done(&mut w.ctx(), id, Some(106), at(330));
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Closed { attempt: id, deployment: a1, end: AttemptEnd::Success }));
    assert_eq!(finished(&actions), Some(&Finished::Answered { attempt: id, deployment: a1 }));
    assert!(m.is_done() && m.poll_timeout().is_none());
    assert_eq!(w.in_flight(), 0);
    assert_eq!(m.route(), [a1]);
}

#[test]
fn each_stage_times_out_into_a_failover() {
    let mut w = World::new();
    let (a1, z1, s) = (w.id("a1"), w.id("z1"), spec(&w, true));
    // No headers within first_byte.
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.handle_timeout(&mut w.ctx(), at(1000));
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Stop { attempt: id }));
    assert!(actions.contains(&Action::Closed {
        attempt: id,
        deployment: a1,
        end: AttemptEnd::Failed(AttemptError::FirstByteTimeout)
    }));
    let next = started(&actions);
    assert_eq!(next[0].1, z1, "the next deployment, never the same one");
    // Headers but no content within first_token.
    m.on_headers(next[0].0);
    m.handle_timeout(&mut w.ctx(), at(3000));
    let actions = drain(&mut m);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Closed { end: AttemptEnd::Failed(AttemptError::FirstTokenTimeout), .. }))
    );
    assert_eq!(finished(&actions), Some(&Finished::Failed(Failure::Exhausted(Exhausted::Plan))));
    assert_eq!(m.failures().len(), 2);
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn a_stalled_stream_is_continued_elsewhere_with_its_delivered_text() {
    let mut w = World::new();
    let (a1, z1, s) = (w.id("a1"), w.id("z1"), spec(&w, true));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    m.on_headers(first);
    m.on_content(&mut w.ctx(), first, 5, false, at(100));
    m.handle_timeout(&mut w.ctx(), at(600));
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Closed {
        attempt: first,
        deployment: a1,
        end: AttemptEnd::Failed(AttemptError::StreamStalled)
    }));
    let next = started(&actions);
    assert_eq!(next.len(), 1);
    let (second, deployment, continuation, _) = next[0];
    assert_eq!((deployment, continuation), (z1, true), "the broken deployment goes last");
    m.on_headers(second);
    m.on_content(&mut w.ctx(), second, 4, false, at(700));
    m.on_done(&mut w.ctx(), second, None, at(800));
    assert_eq!(finished(&drain(&mut m)), Some(&Finished::Answered { attempt: second, deployment: z1 }));
    assert_eq!(m.route(), [a1, z1]);
    assert_eq!(m.delivered_tokens(), 9);
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn a_stream_with_tool_calls_is_not_continued() {
    let mut w = World::new();
    let s = spec(&w, true);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.on_content(&mut w.ctx(), id, 2, true, at(100));
    m.on_failed(&mut w.ctx(), id, AttemptError::StreamCut, at(200));
    let actions = drain(&mut m);
    assert!(started(&actions).is_empty());
    assert_eq!(finished(&actions), Some(&Finished::Failed(Failure::Interrupted(AttemptError::StreamCut))));
}

#[test]
fn retries_on_the_same_deployment_wait_out_a_short_retry_after() {
    let mut w = World::new();
    let (a1, s) = (w.id("a1"), spec(&w, false));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    let limited = AttemptError::RateLimited { retry_after: Some(Duration::from_millis(300)) };
    m.on_failed(&mut w.ctx(), id, limited, at(50));
    assert!(started(&drain(&mut m)).is_empty(), "waits first");
    assert_eq!(m.poll_timeout(), Some(at(350)));
    m.handle_timeout(&mut w.ctx(), at(350));
    let next = started(&drain(&mut m));
    assert_eq!(next[0].1, a1);
    m.on_headers(next[0].0);
    m.on_done(&mut w.ctx(), next[0].0, Some(150), at(400));
    assert!(matches!(finished(&drain(&mut m)), Some(Finished::Answered { .. })));
    assert_eq!(m.n_attempts(), 2);
}

#[test]
fn a_reserved_deployments_429_spills_at_once_whatever_its_retry_after() {
    for retry_after in [None, Some(Duration::ZERO), Some(Duration::from_millis(300))] {
        let mut w = World::new();
        w.config.deployments[0].tier = crate::config::Tier::Reserved;
        let (z1, s) = (w.id("z1"), spec(&w, false));
        let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
        let (id, ..) = started(&drain(&mut m))[0];
        m.on_failed(&mut w.ctx(), id, AttemptError::RateLimited { retry_after }, at(50));
        let next = started(&drain(&mut m));
        assert_eq!(next.iter().map(|n| n.1).collect::<Vec<_>>(), [z1], "{retry_after:?}: spilled, no wait");
    }
}

#[test]
fn the_deadline_abandons_what_is_open() {
    let mut w = World::new();
    let s = spec(&w, true);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.on_headers(id);
    m.on_content(&mut w.ctx(), id, 1, false, at(100));
    for t in (400..10_000).step_by(400) {
        m.on_content(&mut w.ctx(), id, 1, false, at(t));
    }
    m.handle_timeout(&mut w.ctx(), at(10_000));
    let actions = drain(&mut m);
    assert!(actions.iter().any(|a| matches!(a, Action::Closed { end: AttemptEnd::Abandoned(Abandon::Deadline), .. })));
    assert_eq!(finished(&actions), Some(&Finished::Failed(Failure::Deadline { after_content: true })));
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn a_content_filter_goes_back_to_the_caller_at_once() {
    let mut w = World::new();
    let s = spec(&w, false);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    let filtered = AttemptError::ContentFiltered { message: "no".into(), code: None };
    m.on_failed(&mut w.ctx(), id, filtered.clone(), at(10));
    let actions = drain(&mut m);
    assert!(started(&actions).is_empty());
    assert_eq!(finished(&actions), Some(&Finished::Failed(Failure::Rejected(filtered))));
}

#[test]
fn a_context_length_refusal_moves_to_the_larger_fallback() {
    let mut w = World::new();
    let (big, s) = (w.id("big"), spec(&w, false));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.on_failed(&mut w.ctx(), id, AttemptError::ContextLengthExceeded { message: "too long".into() }, at(10));
    let next = started(&drain(&mut m));
    assert_eq!(next[0].1, big);
    assert_eq!(m.alias(), w.config.alias("long").unwrap().id);
}

#[test]
fn a_request_too_large_for_every_deployment_has_no_route() {
    let mut w = World::new();
    let mut s = spec(&w, false);
    s.alias = w.config.alias("long").unwrap().id;
    s.input_tokens = 5_000_000;
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    assert!(matches!(finished(&drain(&mut m)), Some(Finished::Failed(Failure::NoRoute(_)))));
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn a_hedge_starts_elsewhere_and_the_first_content_wins() {
    let mut w = World::new();
    let (a1, z1, s) = (w.id("a1"), w.id("z1"), spec(&w, true));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(Some(Duration::from_millis(200))), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    m.on_headers(first);
    assert_eq!(m.poll_timeout(), Some(at(200)), "the hedge timer comes first");
    m.handle_timeout(&mut w.ctx(), at(200));
    let hedge = started(&drain(&mut m));
    assert_eq!(hedge.len(), 1);
    let (second, deployment, continuation, is_hedge) = hedge[0];
    assert_eq!((deployment, continuation, is_hedge), (z1, false, true), "another failure domain");
    assert_eq!(w.in_flight(), 2);
    m.on_headers(second);
    m.on_content(&mut w.ctx(), second, 2, false, at(260));
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Stop { attempt: first }));
    assert!(actions.contains(&Action::Closed {
        attempt: first,
        deployment: a1,
        end: AttemptEnd::Abandoned(Abandon::LostHedge)
    }));
    m.on_done(&mut w.ctx(), second, None, at(400));
    assert_eq!(finished(&drain(&mut m)), Some(&Finished::Answered { attempt: second, deployment: z1 }));
    assert_eq!(m.hedges(), (1, true));
    assert_eq!(w.in_flight(), 0);
    assert_eq!(m.route(), [z1], "the caller's answer came from the hedge alone");
}

#[test]
fn a_failed_attempt_waits_for_its_running_hedge() {
    let mut w = World::new();
    let s = spec(&w, true);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(Some(Duration::from_millis(200))), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    m.handle_timeout(&mut w.ctx(), at(200));
    let (second, ..) = started(&drain(&mut m))[0];
    m.on_failed(&mut w.ctx(), first, AttemptError::ServerError { status: 500 }, at(250));
    assert!(started(&drain(&mut m)).is_empty(), "the hedge is still running");
    m.on_content(&mut w.ctx(), second, 1, false, at(300));
    m.on_done(&mut w.ctx(), second, None, at(350));
    assert!(matches!(finished(&drain(&mut m)), Some(Finished::Answered { .. })));
}

#[test]
fn hedges_stay_within_the_retry_budget() {
    let mut w = World::new();
    let s = spec(&w, true);
    let budget = w.config.routing.retry_budget.clone();
    let n_requests = 1000u32;
    let mut hedges = 0;
    // Every request's first attempt is slow: each would hedge if the budget let it.
    for i in 0..n_requests {
        let t0 = at(u64::from(i));
        let mut m = RequestMachine::new(
            &mut w.ctx(),
            s.clone(),
            Timing { deadline: t0 + Duration::from_secs(10), ..timing(Some(Duration::from_millis(1))) },
            t0,
        );
        let _ = drain(&mut m);
        m.handle_timeout(&mut w.ctx(), t0 + Duration::from_millis(1));
        hedges += started(&drain(&mut m)).iter().filter(|s| s.3).count();
        m.abandon_all(&mut w.ctx(), t0 + Duration::from_millis(1));
    }
    let allowed = budget.ratio * f64::from(n_requests) + budget.min_per_second * budget.window.as_secs_f64();
    assert!(hedges > 0, "hedging happened");
    assert!(f64::from(hedges as u32) <= allowed, "{hedges} hedges, budget {allowed}");
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn abandoning_books_every_open_attempt_once() {
    let mut w = World::new();
    let s = spec(&w, true);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(Some(Duration::from_millis(10))), at(0));
    m.handle_timeout(&mut w.ctx(), at(10));
    let _ = drain(&mut m);
    assert_eq!(w.in_flight(), 2);
    m.abandon_all(&mut w.ctx(), at(20));
    m.abandon_all(&mut w.ctx(), at(30));
    let closed = drain(&mut m)
        .into_iter()
        .filter(|a| matches!(a, Action::Closed { end: AttemptEnd::Abandoned(Abandon::CallerGone), .. }))
        .count();
    assert_eq!(closed, 2);
    assert_eq!(w.in_flight(), 0);
    assert!(m.is_done());
}

#[test]
fn a_continuation_refused_by_its_deployment_ends_with_the_original_interruption() {
    let mut w = World::new();
    let s = spec(&w, true);
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    m.on_content(&mut w.ctx(), first, 3, false, at(100));
    m.on_failed(&mut w.ctx(), first, AttemptError::StreamCut, at(150));
    let (second, _, continuation, _) = started(&drain(&mut m))[0];
    assert!(continuation);
    let refused = AttemptError::ClientError { status: 400, message: "prefill not supported".into(), code: None };
    m.on_failed(&mut w.ctx(), second, refused, at(160));
    let actions = drain(&mut m);
    // The broken deployment is last in the continuation's plan; when it cannot take it either,
    // the caller hears of the cut, not of the refusal.
    let third = started(&actions);
    assert_eq!(third.len(), 1);
    m.on_failed(&mut w.ctx(), third[0].0, AttemptError::ConnectFailed { detail: "down".into() }, at(170));
    assert_eq!(finished(&drain(&mut m)), Some(&Finished::Failed(Failure::Interrupted(AttemptError::StreamCut))));
    assert_eq!(w.in_flight(), 0);
}

#[test]
fn a_held_back_stream_cut_before_release_starts_over_anywhere() {
    let text = CONFIG
        .replace("capabilities: { context_window: 8000, prefill: true }", "capabilities: { context_window: 8000 }")
        .replace(
            "deployments: [a1, z1], fallbacks: [long] }",
            "deployments: [a1, z1], fallbacks: [long], hold_back_tokens: 5 }",
        );
    let config = Config::from_yaml(&text, &NoSecrets).expect("valid");
    let state = RouterState::new(&config, Time::ZERO);
    let mut w = World { config, state, rng: SplitMix64::new(3) };
    let (a1, z1, s) = (w.id("a1"), w.id("z1"), spec(&w, true));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    assert!(m.holding_back(), "no deployment of the alias can continue a stream");
    let (first, ..) = started(&drain(&mut m))[0];
    m.on_content(&mut w.ctx(), first, 3, false, at(100));
    m.on_failed(&mut w.ctx(), first, AttemptError::StreamCut, at(150));
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Restart));
    let (second, deployment, continuation, _) = started(&actions)[0];
    assert_eq!((deployment, continuation), (z1, false), "a fresh attempt, not a continuation");
    m.on_content(&mut w.ctx(), second, 3, false, at(200));
    assert!(!drain(&mut m).contains(&Action::Release));
    m.on_content(&mut w.ctx(), second, 2, false, at(220));
    assert!(drain(&mut m).contains(&Action::Release), "5 tokens held: released");
    m.on_done(&mut w.ctx(), second, None, at(300));
    assert_eq!(finished(&drain(&mut m)), Some(&Finished::Answered { attempt: second, deployment: z1 }));
    assert_eq!(m.route(), [z1]);
    let _ = a1;
}

#[test]
fn nothing_is_held_back_where_a_stream_can_be_continued() {
    let text = CONFIG.replace(
        "deployments: [a1, z1], fallbacks: [long] }",
        "deployments: [a1, z1], fallbacks: [long], hold_back_tokens: 5 }",
    );
    let config = Config::from_yaml(&text, &NoSecrets).expect("valid");
    let state = RouterState::new(&config, Time::ZERO);
    let mut w = World { config, state, rng: SplitMix64::new(3) };
    let s = spec(&w, true);
    let m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    assert!(!m.holding_back());
}

#[test]
fn a_whole_answer_books_its_output_from_its_total() {
    let mut w = World::new();
    let (a1, s) = (w.id("a1"), spec(&w, false));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.on_headers(id);
    // 100 prompt tokens (the spec's) and 100 output tokens in 2 s.
    m.on_done(&mut w.ctx(), id, Some(200), at(2000));
    let expected = w.state.deployment(a1).latency.expected_ms(100);
    assert!(expected < 2500.0, "2 s for 100 tokens, not 2 s to the first one: {expected} ms for 100 tokens");
    let first = w.state.deployment(a1).latency.expected_ms(1);
    assert!(first < 1000.0, "time to first token is not the whole answer's: {first} ms");
}

#[test]
fn a_hedge_can_wait_a_multiple_of_the_time_to_first_token_estimate() {
    let text = CONFIG.replace(
        "deployments: [a1, z1], fallbacks: [long] }",
        "deployments: [a1, z1], fallbacks: [long], hedge_after_ttft: 3 }",
    );
    let config = Config::from_yaml(&text, &NoSecrets).expect("valid");
    let state = RouterState::new(&config, Time::ZERO);
    let mut w = World { config, state, rng: SplitMix64::new(3) };
    let (a1, s) = (w.id("a1"), spec(&w, true));
    let estimate = w.state.deployment(a1).latency.ttft_ms.get();
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    m.on_headers(first);
    let expected = Duration::from_secs_f64(3.0 * estimate / 1000.0);
    assert_eq!(m.poll_timeout(), Some(Time::ZERO + expected), "3 x {estimate} ms");
    m.handle_timeout(&mut w.ctx(), Time::ZERO + expected);
    assert!(started(&drain(&mut m)).iter().any(|s| s.3), "the hedge started");
}

#[test]
fn a_deployment_that_filled_up_meanwhile_is_passed_over_never_overfilled() {
    // a1 takes one attempt at a time. The request's retry on a1 waits out a short Retry-After;
    // meanwhile another request takes a1's slot. When the wait ends, the machine does not
    // start a second attempt on a1: it moves on to z1, and a1 never holds more than one.
    let mut w = World::new();
    w.config.deployments[0].limits.concurrency = Some(1);
    w.state = RouterState::new(&w.config, Time::ZERO);
    let (a1, z1, s) = (w.id("a1"), w.id("z1"), spec(&w, false));
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    let (first, ..) = started(&drain(&mut m))[0];
    let limited = AttemptError::RateLimited { retry_after: Some(Duration::from_millis(100)) };
    m.on_failed(&mut w.ctx(), first, limited, at(10));
    assert!(started(&drain(&mut m)).is_empty(), "waiting out the Retry-After");
    // Another request's attempt takes a1 meanwhile (its own cool-down has passed).
    let other = w.config.tenants[0].id;
    assert!(w.state.try_begin_attempt(a1, other, crate::config::Priority::High, 10, at(50)));
    m.handle_timeout(&mut w.ctx(), at(110));
    let next = started(&drain(&mut m));
    assert_eq!(next.iter().map(|s| s.1).collect::<Vec<_>>(), vec![z1], "passed over to z1");
    assert_eq!(w.state.deployment(a1).in_flight, 1, "a1 never overfilled");
    assert_eq!(m.n_attempts(), 2, "the refused start is not an attempt");

    // With every deployment full before the first attempt, the request ends as planning says.
    let mut w = World::new();
    for d in &mut w.config.deployments {
        d.limits.concurrency = Some(1);
    }
    w.state = RouterState::new(&w.config, Time::ZERO);
    let s = spec(&w, false);
    let other = w.config.tenants[0].id;
    for name in ["a1", "z1", "big"] {
        let id = w.id(name);
        assert!(w.state.try_begin_attempt(id, other, crate::config::Priority::High, 10, at(0)));
    }
    let mut m = RequestMachine::new(&mut w.ctx(), s, timing(None), at(0));
    match finished(&drain(&mut m)) {
        Some(Finished::Failed(Failure::NoRoute(why))) => assert!(why.is_capacity(), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_keys_view_of_its_tenant_holds_every_plan_the_fallbacks_too() {
    let mut w = World::new();
    let tenant = w.config.tenants[0].clone();
    let chat = w.config.alias("chat").unwrap().id;
    // A key held to `chat`: after a context-length refusal, no `long` fallback for it.
    let narrow = std::sync::Arc::new(Tenant { aliases: Some(vec![chat]), ..tenant.clone() });
    let s = spec(&w, false);
    let mut m = RequestMachine::with_view(&mut w.ctx(), s.clone(), Some(narrow), timing(None), at(0));
    let (id, ..) = started(&drain(&mut m))[0];
    m.on_failed(&mut w.ctx(), id, AttemptError::ContextLengthExceeded { message: "too long".into() }, at(10));
    assert!(matches!(finished(&drain(&mut m)), Some(Finished::Failed(Failure::ContextTooLarge(_)))));
    // A key held to a jurisdiction none of the deployments is in: no route, nothing started.
    let nowhere = std::sync::Arc::new(Tenant { jurisdiction_mask: 0, jurisdictions: vec![], ..tenant });
    let mut m = RequestMachine::with_view(&mut w.ctx(), s, Some(nowhere), timing(None), at(20));
    match finished(&drain(&mut m)) {
        Some(Finished::Failed(Failure::NoRoute(why))) => assert_eq!(why.outside_jurisdiction, 2, "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.in_flight(), 0);
}
