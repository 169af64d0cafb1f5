//! Provisioned (PTU) spillover in the router's state: a reserved deployment's 429s and its own
//! "no room left" reports keep it out of plans for their cool-down or reset, never eject it, and
//! it is planned first again as soon as that passes.

use std::time::Duration;

use super::*;
use crate::attempt::AttemptError;
use crate::config::{Config, TenantId};
use crate::plan::{Needs, PlanRequest, plan};
use crate::rng::SplitMix64;
use crate::state::Outcome;

const CONFIG: &str = r#"
clouds:
  - { name: azure, protocol: azure-openai, api_key: "env:AZURE_KEY" }
  - { name: aws, protocol: openai }
deployments:
  - { name: ptu, cloud: azure, region: eastus, jurisdiction: us, model: gpt-ptu, endpoint: "https://contoso.openai.azure.com", price: { input_per_mtok: 2.5, output_per_mtok: 10 }, tier: reserved }
  - { name: paygo, cloud: azure, region: eastus2, jurisdiction: us, model: gpt-paygo, endpoint: "https://contoso.openai.azure.com", price: { input_per_mtok: 2.5, output_per_mtok: 10 } }
  - { name: aws, cloud: aws, region: us-east-1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: { input_per_mtok: 3, output_per_mtok: 15 } }
aliases:
  - { name: chat, policy: cost, deployments: [ptu, paygo, aws] }
tenants:
  - { name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"], jurisdictions: [us], aliases: ["*"] }
"#;

struct Env {
    config: Config,
}

impl Env {
    fn new() -> Env {
        let config = Config::from_yaml(CONFIG, &AzureKey).expect("config");
        Env { config }
    }

    fn id(&self, name: &str) -> DeploymentId {
        self.config.deployment_by_name(name).expect("deployment").id
    }

    /// The first deployment a plan of `tokens` input tokens tries.
    fn first(&self, state: &RouterState, tokens: u32, now: Time) -> String {
        let request = PlanRequest {
            alias: self.config.alias("chat").expect("alias").id,
            tenant: &self.config.tenants[0],
            input_tokens: tokens,
            context_tokens: None,
            max_output_tokens: Some(100),
            needs: Needs::default(),
            min_context_above: 0,
            avoid: None,
            unfit: &[],
        };
        let plan = plan(&self.config, state, &request, now, &mut SplitMix64::new(7)).expect("a route");
        self.config.deployment(plan.deployments[0]).name.clone()
    }
}

/// The Azure key the config refers to.
struct AzureKey;

impl crate::config::SecretSource for AzureKey {
    fn env(&self, name: &str) -> Option<String> {
        (name == "AZURE_KEY").then(|| "k".to_owned())
    }
    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

#[test]
fn a_ptu_is_never_ejected_for_its_429s_and_is_first_again_when_its_cool_down_ends() {
    let env = Env::new();
    let state = RouterState::new(&env.config, Time::ZERO);
    let ptu = env.id("ptu");
    assert_eq!(env.first(&state, 100, ms(0)), "ptu", "reserved capacity is filled first");
    // Far more 429s in a row than it takes failures to eject (5 by default).
    let limited = AttemptError::RateLimited { retry_after: Some(Duration::from_millis(300)) };
    let mut t = 0;
    for _ in 0..50 {
        state.begin_attempt(ptu, TenantId(0), 200, ms(t));
        state.end_attempt(ptu, TenantId(0), 200, Outcome::Failure(&limited), ms(t));
        let d = state.deployment(ptu);
        assert!(!d.health.is_ejected(ms(t)), "never ejected for a 429");
        assert_eq!(d.health.consecutive_failures(), 0, "a 429 is not a failure");
        drop(d);
        assert_ne!(env.first(&state, 100, ms(t)), "ptu", "spilled while cooling down");
        t += 10;
    }
    assert_eq!(state.n_ejected(ms(t)), 0);
    // The last cool-down ends 300 ms after the last 429: planned first again right then.
    let last = t - 10;
    assert_ne!(env.first(&state, 100, ms(last + 299)), "ptu");
    assert_eq!(env.first(&state, 100, ms(last + 300)), "ptu", "spilled back as the cool-down ended");
}

#[test]
fn no_requests_left_is_planned_around_until_the_reset() {
    let env = Env::new();
    let state = RouterState::new(&env.config, Time::ZERO);
    let ptu = env.id("ptu");
    let full = Headroom { requests: Some(0), requests_reset: Some(Duration::from_millis(250)), ..Headroom::default() };
    state.observe_headroom(ptu, &full, ms(1000));
    assert_ne!(env.first(&state, 100, ms(1000)), "ptu");
    assert_ne!(env.first(&state, 100, ms(1249)), "ptu");
    assert_eq!(env.first(&state, 100, ms(1250)), "ptu", "back when the reset passes");
    assert!(!state.deployment(ptu).health.is_ejected(ms(1000)));

    // Without a reset: a second. A later answer with room brings it back at once.
    state.observe_headroom(ptu, &Headroom { requests: Some(0), ..Headroom::default() }, ms(2000));
    assert_ne!(env.first(&state, 100, ms(2999)), "ptu");
    assert_eq!(env.first(&state, 100, ms(3000)), "ptu");
    state.observe_headroom(ptu, &Headroom { requests: Some(0), ..Headroom::default() }, ms(4000));
    state.observe_headroom(ptu, &Headroom { requests: Some(3), ..Headroom::default() }, ms(4100));
    assert_eq!(env.first(&state, 100, ms(4100)), "ptu", "a later answer showed room");

    // Nothing reported changes nothing; a reset past the cap waits only the cap.
    state.observe_headroom(ptu, &Headroom::default(), ms(5000));
    assert_eq!(env.first(&state, 100, ms(5000)), "ptu");
    let hour = Headroom { requests: Some(0), requests_reset: Some(Duration::from_secs(3600)), ..Headroom::default() };
    state.observe_headroom(ptu, &hour, ms(6000));
    let capped = 6000 + MAX_HEADROOM_WAIT.as_millis() as u64;
    assert_ne!(env.first(&state, 100, ms(capped - 1)), "ptu");
    assert_eq!(env.first(&state, 100, ms(capped)), "ptu");
}

#[test]
fn fewer_tokens_left_than_a_request_needs_sends_only_that_request_elsewhere() {
    let env = Env::new();
    let state = RouterState::new(&env.config, Time::ZERO);
    let ptu = env.id("ptu");
    let tokens =
        Headroom { tokens: Some(1_000), tokens_reset: Some(Duration::from_millis(500)), ..Headroom::default() };
    state.observe_headroom(ptu, &tokens, ms(0));
    // 100 input + 100 output fit in 1,000; 5,000 input do not.
    assert_eq!(env.first(&state, 100, ms(0)), "ptu");
    assert_ne!(env.first(&state, 5_000, ms(0)), "ptu");
    assert_eq!(env.first(&state, 5_000, ms(500)), "ptu", "the window reset");
}

#[test]
fn an_answer_says_full_with_no_requests_or_no_tokens_left() {
    let full = |requests, tokens| Headroom { requests, tokens, ..Headroom::default() }.says_full();
    assert!(full(Some(0), None) && full(None, Some(0)) && full(Some(3), Some(0)));
    assert!(!full(Some(3), Some(10)) && !full(None, None));
}
