//! One request's life, from its first plan to its final outcome, as a sans-IO state machine:
//! first attempt, same-deployment retry, failover, larger-context fallback, hedge, stream
//! continuation and every timeout, decided on one path.
//!
//! A driver (the gateway with real sockets, the simulator on its virtual clock) feeds it what
//! happened to each attempt (`on_headers`, `on_content`, `on_finish_reason`, `on_done`,
//! `on_failed`), asks when it must next be woken (`poll_timeout`) and wakes it then
//! (`handle_timeout`). In return it takes [`Action`]s from `poll_action`: start an attempt,
//! stop one, an attempt's booking, and the request's end. Every follow-up goes through the
//! planner's filters, `decide()`, `max_attempts` and the retry budget. The machine books each
//! attempt in the router itself, exactly once: at its end, or in `abandon_all` when the driver
//! gives up (the caller went away).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::attempt::{AttemptError, AttemptSession, Decision, Exhausted, OnRateLimit};
use crate::config::{AliasId, Config, DeploymentId, Tenant, TenantId, Tier};
use crate::plan::{Needs, NoRoute, PlanRequest, plan, plan_larger_context, plan_with_fallbacks};
use crate::rng::Rng;
use crate::state::{Outcome, RouterState};
use crate::time::Time;

/// The shortest hedge delay a multiple of a time-to-first-token estimate can give.
const MIN_HEDGE_DELAY: Duration = Duration::from_millis(20);

/// What is being asked, independent of where it runs.
#[derive(Clone, Debug)]
pub struct Spec {
    pub alias: AliasId,
    pub tenant: TenantId,
    /// Estimated prompt tokens.
    pub input_tokens: u32,
    /// What one call must fit in a context window, when not the whole prompt
    /// ([`PlanRequest::context_tokens`]).
    pub context_tokens: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub needs: Needs,
    /// Tokens reserved against each deployment's tokens-per-minute allowance per attempt.
    pub reserved_tokens: u32,
    /// Deployments whose own API cannot take the request ([`PlanRequest::unfit`]).
    pub unfit: Vec<DeploymentId>,
}

/// The clock a request runs by: its deadline and each stage's timeout.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub deadline: Time,
    /// From an attempt's start to its response headers.
    pub first_byte: Duration,
    /// From a streaming attempt's start to its first content.
    pub first_token: Duration,
    /// Longest silence in a stream after content.
    pub stream_idle: Duration,
    /// After the finish reason, how long to wait for the usage chunk or the end.
    pub after_finish: Duration,
    /// Start a second attempt in another failure domain when the first has no content by then.
    pub hedge_after: Option<Duration>,
}

/// The same request as the planner sees it, with its alias as it stands (a fallback may have
/// replaced the one asked for).
#[derive(Clone, Copy, Debug)]
struct Planned {
    alias: AliasId,
    min_context_above: u32,
}

/// An attempt, numbered in the order started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub u32);

/// Why the driver must stop an attempt, and how it was booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandon {
    /// Another attempt produced content first.
    LostHedge,
    /// The request deadline passed.
    Deadline,
    /// The caller went away.
    CallerGone,
}

/// How an attempt ended, as booked in the router.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptEnd {
    Success,
    Failed(AttemptError),
    Abandoned(Abandon),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open an attempt: send the request to `deployment`; with `continuation`, ask it to go on
    /// from the text already delivered (an assistant prefill).
    Start { attempt: AttemptId, deployment: DeploymentId, continuation: bool, hedge: bool },
    /// Drop this attempt's IO: it timed out or lost. Its booking follows as `Closed`.
    Stop { attempt: AttemptId },
    /// The answer held back so far may go to the caller now (see `hold_back_tokens`); what
    /// follows goes as it comes.
    Release,
    /// The attempt whose answer was being held back broke before release: drop what was held;
    /// the request starts over (the caller has seen nothing).
    Restart,
    /// An attempt was booked in the router as ended: for metrics, logs and accounts.
    Closed { attempt: AttemptId, deployment: DeploymentId, end: AttemptEnd },
    /// The request is over. Nothing follows.
    Finish(Finished),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Finished {
    /// `attempt` answered; with a stream, the last of the attempts that produced it.
    Answered {
        attempt: AttemptId,
        deployment: DeploymentId,
    },
    Failed(Failure),
}

/// Why a request ended without an answer. The failed attempts are in [`RequestMachine::failures`].
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    NoRoute(Box<NoRoute>),
    Exhausted(Exhausted),
    /// The deadline passed; `after_content` when part of a stream had reached the caller.
    Deadline {
        after_content: bool,
    },
    /// The provider's verdict on the request (content filter, other 4xx): the caller's to see.
    Rejected(AttemptError),
    /// Too large for every deployment, and no fallback with a larger window.
    ContextTooLarge(AttemptError),
    /// A stream broke after content and could not be continued anywhere.
    Interrupted(AttemptError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Headers,
    FirstToken,
    WholeBody,
    Streaming,
    Finishing,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    id: AttemptId,
    deployment: DeploymentId,
    started: Time,
    stage: Stage,
    /// When the current stage times out.
    timer: Option<Time>,
    first_content: Option<Time>,
    output_tokens: u32,
    hedge: bool,
}

/// How `close` books an attempt that did not succeed.
#[derive(Clone, Debug)]
enum Closing {
    Failed(AttemptError),
    Abandoned(Abandon),
}

/// One request's state machine. See the module documentation.
#[derive(Debug)]
pub struct RequestMachine {
    spec: Spec,
    /// The tenant as the caller's key narrows it (its aliases, jurisdictions, priority), when
    /// the key has settings of its own; else the config's tenant.
    view: Option<Arc<Tenant>>,
    planned: Planned,
    timing: Timing,
    streaming: bool,
    retry_after_cap: Duration,
    session: AttemptSession,
    open: Vec<Open>,
    next_id: u32,
    /// The attempt whose content reaches the caller, while it runs.
    winner: Option<AttemptId>,
    /// Content tokens the caller has received, over every attempt.
    delivered_tokens: u32,
    tool_calls: bool,
    /// A same-deployment retry waiting out its delay.
    waiting: Option<(Time, DeploymentId)>,
    hedge_at: Option<Time>,
    /// The failure that broke the stream, while its continuation is looked for.
    interrupted: Option<AttemptError>,
    /// Deployments that produced part of the answer, in order.
    route: Vec<DeploymentId>,
    n_hedges: u32,
    hedge_won: bool,
    /// Output tokens to hold back before the caller sees any, when a stream could not be
    /// continued elsewhere; `None` when nothing is held (or once released).
    hold_back: Option<u32>,
    actions: VecDeque<Action>,
    done: bool,
}

/// What the machine needs of the world besides events: the config, the router's state, and
/// randomness for planning.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub state: &'a RouterState,
    pub rng: &'a mut dyn Rng,
}

impl RequestMachine {
    /// Plans the request (on the alias's larger-context fallbacks if the prompt is too large for
    /// it) and starts its first attempt, or finishes at once with `NoRoute`.
    pub fn new(ctx: &mut Ctx<'_>, spec: Spec, timing: Timing, now: Time) -> RequestMachine {
        RequestMachine::with_view(ctx, spec, None, timing, now)
    }

    /// [`RequestMachine::new`] for a caller whose key narrows its tenant: every plan (the first,
    /// fallbacks, larger-context fallbacks, continuations) and every attempt's priority use
    /// `view` (a narrower copy of `spec.tenant`'s config, the same id) instead.
    pub fn with_view(
        ctx: &mut Ctx<'_>,
        spec: Spec,
        view: Option<Arc<Tenant>>,
        timing: Timing,
        now: Time,
    ) -> RequestMachine {
        let config = ctx.config;
        debug_assert!(view.as_ref().is_none_or(|v| v.id == spec.tenant), "a view of another tenant");
        let (alias, tenant, streaming) = (spec.alias, spec.tenant, spec.needs.streaming);
        let mut machine = RequestMachine {
            spec,
            view,
            planned: Planned { alias, min_context_above: 0 },
            timing,
            streaming,
            retry_after_cap: config.server.retry_after_cap,
            session: AttemptSession::new(Vec::new(), config.server.max_attempts),
            open: Vec::new(),
            next_id: 0,
            winner: None,
            delivered_tokens: 0,
            tool_calls: false,
            waiting: None,
            hedge_at: None,
            interrupted: None,
            route: Vec::new(),
            n_hedges: 0,
            hedge_won: false,
            hold_back: None,
            actions: VecDeque::new(),
            done: false,
        };
        ctx.state.on_request(tenant, now);
        let request = machine.plan_request(config);
        match plan_with_fallbacks(config, ctx.state, &request, now, ctx.rng) {
            Ok((planned_request, planned)) => {
                machine.planned.alias = planned_request.alias;
                machine.hold_back = machine.hold_back_needed(config);
                machine.session.replace_plan(planned.deployments);
                machine.advance(ctx, now);
            }
            Err(why) => machine.finish(Finished::Failed(Failure::NoRoute(why))),
        }
        machine
    }

    /// Holding back is needed only for a stream that could not be continued: the alias asks for
    /// it, and none of its deployments accepts a prefill, or the request has tools.
    fn hold_back_needed(&self, config: &Config) -> Option<u32> {
        let alias = &config.aliases[usize::from(self.planned.alias.0)];
        let tokens = alias.hold_back_tokens.filter(|_| self.streaming)?;
        let can_continue = alias.deployments.iter().any(|d| config.deployment(*d).capabilities.prefill);
        (self.spec.needs.tools || !can_continue).then_some(tokens)
    }

    /// Whether the answer is being held back from the caller right now.
    pub fn holding_back(&self) -> bool {
        self.hold_back.is_some()
    }

    /// The tenant every plan and attempt is for: the key's view of it, or the config's.
    fn tenant<'a>(&'a self, config: &'a Config) -> &'a Tenant {
        self.view.as_deref().unwrap_or_else(|| config.tenant(self.spec.tenant))
    }

    fn plan_request<'a>(&'a self, config: &'a Config) -> PlanRequest<'a> {
        PlanRequest {
            alias: self.planned.alias,
            tenant: self.tenant(config),
            input_tokens: self.spec.input_tokens,
            context_tokens: self.spec.context_tokens,
            max_output_tokens: self.spec.max_output_tokens,
            needs: self.spec.needs,
            min_context_above: self.planned.min_context_above,
            avoid: None,
            unfit: &self.spec.unfit,
        }
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the machine must next be woken with [`RequestMachine::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.done {
            return None;
        }
        let timers = self.open.iter().filter_map(|o| o.timer);
        let others = [Some(self.timing.deadline), self.waiting.map(|w| w.0), self.hedge_at];
        timers.chain(others.into_iter().flatten()).min()
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Every failed attempt so far: (deployment, why).
    pub fn failures(&self) -> &[(DeploymentId, AttemptError)] {
        &self.session.failures
    }

    pub fn n_attempts(&self) -> u32 {
        self.session.n_attempts()
    }

    /// The attempt whose content reaches the caller, while it runs.
    pub fn winner(&self) -> Option<AttemptId> {
        self.winner
    }

    /// Hedges started, and whether one of them won.
    pub fn hedges(&self) -> (u32, bool) {
        (self.n_hedges, self.hedge_won)
    }

    /// Deployments that produced part of the answer, in order (more than one after a
    /// continuation).
    pub fn route(&self) -> &[DeploymentId] {
        &self.route
    }

    /// The alias the request is planned on now (a fallback's, once one was taken).
    pub fn alias(&self) -> AliasId {
        self.planned.alias
    }

    /// Content tokens the caller has received.
    pub fn delivered_tokens(&self) -> u32 {
        self.delivered_tokens
    }

    /// Response headers arrived.
    pub fn on_headers(&mut self, id: AttemptId) {
        let (streaming, first_token) = (self.streaming, self.timing.first_token);
        if let Some(o) = self.open_mut(id)
            && o.stage == Stage::Headers
        {
            if streaming {
                o.stage = Stage::FirstToken;
                o.timer = Some(o.started + first_token);
            } else {
                o.stage = Stage::WholeBody;
                o.timer = None;
            }
        }
    }

    /// Content arrived: `tokens` of output, and whether it carries tool calls. The first
    /// attempt to produce content wins; any other is stopped as a lost hedge.
    pub fn on_content(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, tokens: u32, tool_calls: bool, now: Time) {
        let Some(index) = self.index(id) else { return };
        if self.winner.is_none() {
            self.winner = Some(id);
            self.hedge_at = None;
            self.hedge_won |= self.open[index].hedge;
            self.route.push(self.open[index].deployment);
            let losers: Vec<AttemptId> = self.open.iter().map(|o| o.id).filter(|o| *o != id).collect();
            for loser in losers {
                self.close(ctx, loser, Closing::Abandoned(Abandon::LostHedge), now);
                self.actions.push_back(Action::Stop { attempt: loser });
            }
        }
        self.on_progress(id, tokens, tool_calls, now);
    }

    /// More content from the attempt already answering (the caller's stream): needs no router
    /// state, so a driver can report it without a lock. Ignored for any other attempt.
    pub fn on_progress(&mut self, id: AttemptId, tokens: u32, tool_calls: bool, now: Time) {
        if self.winner != Some(id) {
            return;
        }
        let idle = self.timing.stream_idle;
        let Some(o) = self.open_mut(id) else { return };
        if o.first_content.is_none() {
            o.first_content = Some(now);
        }
        o.output_tokens = o.output_tokens.saturating_add(tokens);
        if o.stage != Stage::Finishing {
            o.stage = Stage::Streaming;
            o.timer = Some(now + idle);
        }
        self.delivered_tokens = self.delivered_tokens.saturating_add(tokens);
        self.tool_calls |= tool_calls;
        if self.hold_back.is_some_and(|hold| self.delivered_tokens >= hold) {
            self.hold_back = None;
            self.actions.push_back(Action::Release);
        }
    }

    /// The finish reason arrived: the usage chunk or the end may still follow, for a while.
    pub fn on_finish_reason(&mut self, id: AttemptId, now: Time) {
        let grace = self.timing.after_finish;
        if self.winner == Some(id)
            && let Some(o) = self.open_mut(id)
        {
            o.stage = Stage::Finishing;
            o.timer = Some(now + grace);
        }
    }

    /// The attempt ended cleanly: the whole body was read, or the stream finished. `used_tokens`
    /// is its real total (prompt and output) when the upstream reported one.
    pub fn on_done(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, used_tokens: Option<u64>, now: Time) {
        if self.index(id).is_none() {
            return;
        }
        if self.winner.is_none() {
            // A whole answer: arriving complete is its first content.
            self.on_content(ctx, id, 0, false, now);
        }
        if self.winner != Some(id) {
            return;
        }
        self.succeed(ctx, id, used_tokens, now);
    }

    /// The attempt failed (as the driver saw it: a connection error, a status, a cut stream).
    pub fn on_failed(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, error: AttemptError, now: Time) {
        if self.index(id).is_none() {
            return;
        }
        if self.winner == Some(id)
            && let Some(o) = self.open.iter().find(|o| o.id == id)
            && o.stage == Stage::Finishing
        {
            // The answer was complete; only its trailer was lost.
            self.succeed(ctx, id, None, now);
            return;
        }
        self.fail(ctx, id, error, now);
    }

    /// Wakes the machine at (or after) the instant `poll_timeout` gave.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>, now: Time) {
        if self.done {
            return;
        }
        if now >= self.timing.deadline {
            self.give_up(ctx, Abandon::Deadline, now);
            let after_content = self.hold_back.is_none() && (self.delivered_tokens > 0 || !self.route.is_empty());
            self.finish(Finished::Failed(Failure::Deadline { after_content }));
            return;
        }
        let expired: Vec<(AttemptId, Stage)> =
            self.open.iter().filter(|o| o.timer.is_some_and(|t| t <= now)).map(|o| (o.id, o.stage)).collect();
        for (id, stage) in expired {
            if self.done {
                return;
            }
            let error = match stage {
                Stage::Finishing => {
                    self.succeed(ctx, id, None, now);
                    continue;
                }
                Stage::Headers if self.streaming && self.timing.first_token < self.timing.first_byte => {
                    AttemptError::FirstTokenTimeout
                }
                Stage::Headers => AttemptError::FirstByteTimeout,
                Stage::FirstToken => AttemptError::FirstTokenTimeout,
                Stage::Streaming | Stage::WholeBody => AttemptError::StreamStalled,
            };
            self.actions.push_back(Action::Stop { attempt: id });
            self.fail(ctx, id, error, now);
        }
        if let Some((at, deployment)) = self.waiting
            && at <= now
            && !self.done
        {
            self.waiting = None;
            if !self.start(ctx, deployment, false, now) {
                self.session.unstart();
                self.advance(ctx, now);
            }
        }
        if let Some(at) = self.hedge_at
            && at <= now
            && !self.done
        {
            self.hedge_at = None;
            self.hedge(ctx, now);
        }
    }

    /// The driver gives up (the caller went away): every open attempt is booked as abandoned
    /// and the request ends. Idempotent.
    pub fn abandon_all(&mut self, ctx: &mut Ctx<'_>, now: Time) {
        if self.done {
            return;
        }
        self.give_up(ctx, Abandon::CallerGone, now);
        self.done = true;
    }

    // === internals ===

    fn index(&self, id: AttemptId) -> Option<usize> {
        self.open.iter().position(|o| o.id == id)
    }

    fn open_mut(&mut self, id: AttemptId) -> Option<&mut Open> {
        self.open.iter_mut().find(|o| o.id == id)
    }

    fn finish(&mut self, finished: Finished) {
        if !self.done {
            self.done = true;
            self.waiting = None;
            self.hedge_at = None;
            self.actions.push_back(Action::Finish(finished));
        }
    }

    fn give_up(&mut self, ctx: &mut Ctx<'_>, why: Abandon, now: Time) {
        let ids: Vec<AttemptId> = self.open.iter().map(|o| o.id).collect();
        for id in ids {
            self.close(ctx, id, Closing::Abandoned(why), now);
            self.actions.push_back(Action::Stop { attempt: id });
        }
        self.waiting = None;
        self.hedge_at = None;
    }

    /// Books an attempt's end in the router, exactly once, and reports it.
    /// Books the end of an attempt that did not succeed, exactly once, and reports it; what it
    /// did produce is charged to the deployment's allowance.
    fn close(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, closing: Closing, now: Time) -> Option<Open> {
        let index = self.index(id)?;
        let o = self.open.remove(index);
        let reserved = self.spec.reserved_tokens;
        let end = match closing {
            Closing::Failed(error) => {
                ctx.state.end_attempt(o.deployment, self.spec.tenant, reserved, Outcome::Failure(&error), now);
                AttemptEnd::Failed(error)
            }
            Closing::Abandoned(why) => {
                ctx.state.end_attempt(o.deployment, self.spec.tenant, reserved, Outcome::Abandoned, now);
                AttemptEnd::Abandoned(why)
            }
        };
        if o.output_tokens > 0 {
            let used = u64::from(self.spec.input_tokens) + u64::from(o.output_tokens);
            ctx.state.charge_tokens(o.deployment, used, now);
        }
        self.actions.push_back(Action::Closed { attempt: id, deployment: o.deployment, end });
        Some(o)
    }

    fn succeed(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, used_tokens: Option<u64>, now: Time) {
        let Some(index) = self.index(id) else { return };
        let o = self.open.remove(index);
        let counted = u64::from(self.spec.input_tokens) + u64::from(o.output_tokens);
        // A whole answer's output is known only from its total: without it the latency
        // estimate would take the whole generation for time to first token.
        let output_tokens = match (o.output_tokens, used_tokens) {
            (0, Some(used)) => {
                u32::try_from(used.saturating_sub(u64::from(self.spec.input_tokens))).unwrap_or(u32::MAX)
            }
            (counted, _) => counted,
        };
        let outcome = Outcome::Success {
            ttft: if self.streaming { o.first_content.map(|t| t.saturating_since(o.started)) } else { None },
            duration: now.saturating_since(o.started),
            output_tokens,
            total_tokens: used_tokens.unwrap_or(counted),
        };
        ctx.state.end_attempt(o.deployment, self.spec.tenant, self.spec.reserved_tokens, outcome, now);
        self.actions.push_back(Action::Closed { attempt: id, deployment: o.deployment, end: AttemptEnd::Success });
        if self.hold_back.take().is_some() {
            self.actions.push_back(Action::Release);
        }
        let others: Vec<AttemptId> = self.open.iter().map(|o| o.id).collect();
        for other in others {
            self.close(ctx, other, Closing::Abandoned(Abandon::LostHedge), now);
            self.actions.push_back(Action::Stop { attempt: other });
        }
        self.finish(Finished::Answered { attempt: id, deployment: o.deployment });
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, id: AttemptId, error: AttemptError, now: Time) {
        let was_winner = self.winner == Some(id);
        let Some(o) = self.close(ctx, id, Closing::Failed(error.clone()), now) else { return };
        // Reserved (provisioned) capacity spills at once: a 429 there says it is full, and
        // on-demand capacity behind it answers now, rather than after the Retry-After.
        let spill = ctx.config.deployment(o.deployment).tier == Tier::Reserved && self.session.has_more();
        let on_rate_limit = if spill { OnRateLimit::Spill } else { OnRateLimit::Wait { up_to: self.retry_after_cap } };
        let decision = self.session.on_failure(o.deployment, error.clone(), on_rate_limit);
        if was_winner && self.hold_back.is_some() {
            // Nothing reached the caller: start over, anywhere, as if no content had come.
            self.winner = None;
            self.route.clear();
            self.delivered_tokens = 0;
            self.tool_calls = false;
            self.actions.push_back(Action::Restart);
            self.advance(ctx, now);
            return;
        }
        if was_winner {
            // Content reached the caller: the rest comes from elsewhere, or the stream ends.
            self.winner = None;
            self.continue_stream(ctx, o.deployment, error, now);
            return;
        }
        match decision {
            // A deployment that refuses to continue a stream (a rejected prefill, say) is no
            // verdict on the request: the next one in the continuation's plan is tried, and the
            // caller hears of the original interruption if none can.
            Decision::ReturnToCaller | Decision::LargerContext if self.interrupted.is_some() => {
                self.advance(ctx, now);
            }
            Decision::ReturnToCaller => {
                self.give_up(ctx, Abandon::LostHedge, now);
                self.finish(Finished::Failed(Failure::Rejected(error)));
            }
            // Another attempt (a hedge) is still running: it may yet answer.
            _ if !self.open.is_empty() => {}
            Decision::LargerContext => {
                let failed = ctx.config.deployment(o.deployment);
                let request = self.plan_request(ctx.config);
                match plan_larger_context(ctx.config, ctx.state, &request, failed, now, ctx.rng) {
                    Some((larger, plan)) => {
                        self.planned = Planned { alias: larger.alias, min_context_above: larger.min_context_above };
                        self.session.replace_plan(plan);
                        self.advance(ctx, now);
                    }
                    None => self.finish(Finished::Failed(Failure::ContextTooLarge(error))),
                }
            }
            // A continuation attempt that failed before content moves on in the continuation's
            // plan, like any other.
            Decision::RetrySame { .. } | Decision::NextDeployment | Decision::ContinueStream => self.advance(ctx, now),
        }
    }

    /// Plans the rest of a broken stream on deployments that accept a prefill, the broken one
    /// last, and starts it; or ends the stream.
    fn continue_stream(&mut self, ctx: &mut Ctx<'_>, broken: DeploymentId, error: AttemptError, now: Time) {
        if self.tool_calls {
            self.finish(Finished::Failed(Failure::Interrupted(error)));
            return;
        }
        let request = self.plan_request(ctx.config).continuation(self.delivered_tokens, broken);
        match plan(ctx.config, ctx.state, &request, now, ctx.rng) {
            Ok(planned) => {
                self.interrupted = Some(error);
                self.session.replace_plan(planned.deployments);
                self.advance(ctx, now);
            }
            Err(_) => self.finish(Finished::Failed(Failure::Interrupted(error))),
        }
    }

    /// Starts the next attempt the session allows, or ends the request when none is left. A
    /// deployment that filled up since planning is passed over; when every one has, before any
    /// attempt started, the request is planned again and ends as planning says (no capacity).
    fn advance(&mut self, ctx: &mut Ctx<'_>, now: Time) {
        if self.done || !self.open.is_empty() || self.waiting.is_some() {
            return;
        }
        let mut replanned = false;
        loop {
            match self.session.next(ctx.state, self.spec.tenant, now) {
                Err(_) if self.next_id == 0 && !replanned => {
                    replanned = true;
                    let request = self.plan_request(ctx.config);
                    match plan(ctx.config, ctx.state, &request, now, ctx.rng) {
                        Ok(planned) => self.session.replace_plan(planned.deployments),
                        Err(why) => return self.finish(Finished::Failed(Failure::NoRoute(why))),
                    }
                }
                Err(reason) => {
                    let failure = match self.interrupted.take() {
                        Some(error) => Failure::Interrupted(error),
                        None => Failure::Exhausted(reason),
                    };
                    return self.finish(Finished::Failed(failure));
                }
                Ok(next) if !next.delay.is_zero() => return self.waiting = Some((now + next.delay, next.deployment)),
                Ok(next) => {
                    let continuation = self.interrupted.is_some();
                    if self.start(ctx, next.deployment, continuation, now) {
                        return;
                    }
                    self.session.unstart();
                }
            }
        }
    }

    /// Starts an attempt (and arms the hedge timer for a first one); `false` when the
    /// deployment has no room left for it.
    fn start(&mut self, ctx: &mut Ctx<'_>, deployment: DeploymentId, continuation: bool, now: Time) -> bool {
        let continuation = continuation || self.interrupted.is_some();
        if !self.start_attempt(ctx, deployment, continuation, false, now) {
            return false;
        }
        if !continuation && self.winner.is_none() && self.open.len() == 1 {
            // A fixed delay, or a multiple of this deployment's time-to-first-token estimate
            // (a peak-sensitive average, so it sits high in the distribution).
            let alias = &ctx.config.aliases[usize::from(self.planned.alias.0)];
            let estimate = ctx.state.deployment(deployment).latency.ttft_ms.get();
            let from_estimate = alias
                .hedge_after_ttft
                .and_then(|k| Duration::try_from_secs_f64(k * estimate / 1000.0).ok())
                .map(|d| d.max(MIN_HEDGE_DELAY));
            self.hedge_at = self.timing.hedge_after.or(from_estimate).map(|after| now + after);
        }
        true
    }

    fn start_attempt(
        &mut self,
        ctx: &mut Ctx<'_>,
        deployment: DeploymentId,
        continuation: bool,
        hedge: bool,
        now: Time,
    ) -> bool {
        let priority = self.tenant(ctx.config).priority;
        if !ctx.state.try_begin_attempt(deployment, self.spec.tenant, priority, self.spec.reserved_tokens, now) {
            return false;
        }
        let id = AttemptId(self.next_id);
        self.next_id += 1;
        self.open.push(Open {
            id,
            deployment,
            started: now,
            stage: Stage::Headers,
            timer: Some(now + self.headers_limit()),
            first_content: None,
            output_tokens: 0,
            hedge,
        });
        self.actions.push_back(Action::Start { attempt: id, deployment, continuation, hedge });
        true
    }

    /// How long an attempt may wait for its headers: `first_byte`, and for a stream no longer
    /// than `first_token` either (many providers send a stream's headers with its first token).
    fn headers_limit(&self) -> Duration {
        if self.streaming { self.timing.first_byte.min(self.timing.first_token) } else { self.timing.first_byte }
    }

    /// The first attempt has no content yet: a second one in the next failure domain of the
    /// plan, within `max_attempts` and the retry budget (a hedge is a retry).
    fn hedge(&mut self, ctx: &mut Ctx<'_>, now: Time) {
        if self.winner.is_some() || self.open.len() != 1 || self.interrupted.is_some() {
            return;
        }
        let first = self.open[0].deployment;
        let Ok(next) = self.session.next(ctx.state, self.spec.tenant, now) else { return };
        if next.deployment == first {
            return;
        }
        if self.start_attempt(ctx, next.deployment, false, true, now) {
            self.n_hedges += 1;
        } else {
            self.session.unstart();
        }
    }
}

#[cfg(test)]
mod tests;
