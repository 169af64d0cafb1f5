//! The gateway's side of the core's request state machine: the IO of each attempt the machine
//! starts (send, read a whole answer or a stream), one timer armed from `poll_timeout`, and the
//! machine's actions carried out (start, stop, book, finish). Every decision (retry, failover,
//! hedge, continuation, timeout) is the machine's; this file only does what it says.
//!
//! Dropping a `Driver` whose request is not over (the caller hung up) abandons every open
//! attempt through the machine, so each is booked exactly once whatever happens to the future.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use switchyard_core::AttemptError;
use switchyard_core::config::{Deployment, DeploymentId};
use switchyard_core::lifecycle::{Abandon, Action, AttemptEnd, AttemptId, Ctx, Finished, RequestMachine, Spec, Timing};
use switchyard_core::usage::{Usage, list_cost};
use switchyard_providers::Operation;
use tokio::time::{Instant, Sleep};

use crate::Gateway;
use crate::account::Account;
use crate::io::{AttemptIo, IoEvent};
use crate::metrics::AttemptResult;

/// After the finish reason, wait this long at most for the usage chunk or the end.
pub(crate) const AFTER_FINISH_GRACE: Duration = Duration::from_millis(250);

/// What an attempt sends: the request's body for a deployment, first or continued.
pub(crate) trait Payload: Send + Sync {
    fn operation(&self) -> Operation;
    /// Whether answers come as an event stream.
    fn streaming(&self) -> bool;
    fn body(&self, deployment: &Deployment) -> Vec<u8>;
    /// The body that asks `deployment` to go on from `delivered` (an assistant prefill).
    fn continuation(&self, deployment: &Deployment, delivered: &str, delivered_tokens: u32) -> Vec<u8>;
}

/// One open attempt: its IO and what it produced so far.
pub(crate) struct Open {
    pub(crate) id: AttemptId,
    pub(crate) deployment: DeploymentId,
    pub(crate) io: AttemptIo,
    /// Output chunks seen (the count when the upstream reports no usage).
    pub(crate) n_output_chunks: u64,
    pub(crate) usage: Option<switchyard_wire::chat::WireUsage>,
    pub(crate) finished: bool,
    /// Chunks received before this attempt was chosen to answer, to forward once it is.
    pub(crate) held: Vec<Bytes>,
    /// Tokens of delivered text it was given as a prefill (a continuation).
    pub(crate) prefill_tokens: u32,
    /// Chosen by the machine to answer: its output is the caller's.
    pub(crate) answering: bool,
    /// Its usage was booked (once, when it ended or was stopped).
    settled: bool,
}

/// A request under way: the machine, the IO of its open attempts, and the timer.
pub(crate) struct Driver {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) machine: RequestMachine,
    payload: Arc<dyn Payload>,
    pub(crate) open: Vec<Open>,
    timer: Pin<Box<Sleep>>,
    armed: Option<switchyard_core::Time>,
    pub(crate) finished: Option<Finished>,
    /// Text the caller has received (a continuation's prefill).
    pub(crate) delivered: String,
    /// The caller's usage: the prompt once (from the first attempt that reported it), every
    /// attempt's output.
    pub(crate) usage: Usage,
    prompt_reported: bool,
    /// Prompt tokens when no upstream reports them.
    prompt_estimate: u32,
    /// Set by the machine's `Release`: what was held back may go to the caller.
    pub(crate) release: bool,
    /// Set by the machine's `Restart`: what was held back is void.
    pub(crate) restart: bool,
    /// The tenant's admission, the caller's bill and the ledger record.
    pub(crate) account: Account,
}

impl Driver {
    /// Starts a request: the machine plans it and opens its first attempt.
    pub(crate) fn start(
        gw: &Arc<Gateway>,
        payload: Arc<dyn Payload>,
        spec: Spec,
        timing: Timing,
        account: Account,
    ) -> Driver {
        let now = gw.now();
        // A managed key's view of its tenant (its aliases, jurisdictions, priority) plans it.
        let view = account.view();
        let prompt_estimate = spec.input_tokens;
        let machine = gw.with_rng(|rng| {
            let mut ctx = Ctx { config: &gw.config, state: gw.router(), rng };
            RequestMachine::with_view(&mut ctx, spec, view, timing, now)
        });
        let mut driver = Driver {
            gw: gw.clone(),
            machine,
            payload,
            open: Vec::new(),
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
            finished: None,
            delivered: String::new(),
            usage: Usage::default(),
            prompt_reported: false,
            prompt_estimate,
            release: false,
            restart: false,
            account,
        };
        driver.act();
        driver
    }

    /// Runs the machine with the router's state and the RNG at hand.
    pub(crate) fn with_ctx<R>(&mut self, f: impl FnOnce(&mut RequestMachine, &mut Ctx<'_>) -> R) -> R {
        let Driver { gw, machine, .. } = self;
        gw.with_rng(|rng| {
            let mut ctx = Ctx { config: &gw.config, state: gw.router(), rng };
            f(machine, &mut ctx)
        })
    }

    pub(crate) fn open_mut(&mut self, id: AttemptId) -> Option<&mut Open> {
        self.open.iter_mut().find(|o| o.id == id)
    }

    /// Waits for the next thing to happen: an attempt's IO event, or the machine's timer.
    pub(crate) async fn next(&mut self) -> Option<(AttemptId, IoEvent)> {
        // The timer is moved only to an earlier instant: a stream's idle deadline moves with
        // every chunk, and a wake-up that comes early finds nothing due and re-arms. So a
        // steady stream resets it once per idle period, not per chunk.
        let at = self.machine.poll_timeout();
        if at.is_some_and(|at| self.armed.is_none_or(|armed| at < armed)) {
            self.armed = at;
            if let Some(at) = at {
                self.timer.as_mut().reset(self.gw.instant(at));
            }
        }
        let gw = &self.gw;
        let event = poll_fn(|cx: &mut Context<'_>| {
            for open in &mut self.open {
                if let Poll::Ready(event) = open.io.poll_event(cx) {
                    if matches!(event, IoEvent::Headers) {
                        // The deployment's own word on its room (`x-ratelimit-remaining-*`):
                        // full, it is planned around until its reset (PTU spillover).
                        let headroom = open.io.take_headroom();
                        if headroom.is_reported() && gw.router().observe_headroom(open.deployment, &headroom, gw.now())
                        {
                            gw.metrics.reported_full(open.deployment);
                        }
                    }
                    return Poll::Ready(Some((open.id, event)));
                }
            }
            if self.armed.is_some() && self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if event.is_none() {
            let now = self.gw.now();
            self.with_ctx(|m, ctx| m.handle_timeout(ctx, now));
            self.armed = None;
            self.act();
        }
        event
    }

    /// Carries out the machine's actions.
    pub(crate) fn act(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Start { attempt, deployment, continuation, hedge } => {
                    self.begin(attempt, deployment, continuation, hedge)
                }
                Action::Stop { attempt } => {
                    self.settle(attempt);
                    self.open.retain(|o| o.id != attempt);
                }
                Action::Closed { attempt, deployment, end } => {
                    self.account.attempt_ended(attempt, &end);
                    self.closed(deployment, &end)
                }
                Action::Release => self.release = true,
                Action::Restart => {
                    // The caller has seen nothing: its answer and usage start over.
                    self.restart = true;
                    self.delivered.clear();
                    self.usage = Usage::default();
                    self.prompt_reported = false;
                    self.account.restart();
                    tracing::info!(message = "A held-back stream broke before release: starting over.");
                }
                Action::Finish(finished) => {
                    if let Finished::Answered { .. } = finished
                        && !self.machine.failures().is_empty()
                    {
                        self.gw.metrics.failover();
                    }
                    if self.machine.hedges().1 {
                        self.gw.metrics.hedge(true);
                    }
                    self.finished = Some(finished);
                }
            }
        }
    }

    fn begin(&mut self, attempt: AttemptId, deployment: DeploymentId, continuation: bool, hedge: bool) {
        let gw = self.gw.clone();
        let d = gw.config.deployment(deployment);
        let (body, prefill_tokens) = if continuation {
            let tokens = switchyard_wire::estimate_tokens(&self.delivered);
            let delivered_tokens = u32::try_from(self.usage.completion_tokens).unwrap_or(u32::MAX);
            (self.payload.continuation(d, &self.delivered, delivered_tokens), tokens)
        } else {
            (self.payload.body(d), 0)
        };
        if hedge {
            gw.metrics.hedge(false);
            tracing::info!(message = "Hedging: a second attempt.", deployment = %d.name);
        }
        let operation = self.payload.operation();
        // The machine times the attempt; the client's own limit is only the request's.
        let limit = Duration::from_secs(24 * 3600);
        let index = usize::from(deployment.0);
        let io = if operation == Operation::Embeddings && gw.upstream.embeds_by_calls(index) {
            // Embeddings in the deployment's own API: the calls it allows, merged.
            let (told, headers) = tokio::sync::oneshot::channel();
            AttemptIo::embedding(Box::pin(async move { gw.upstream.embed(index, body, limit, told).await }), headers)
        } else {
            let send = Box::pin(async move { gw.upstream.attempt(index, operation, body, limit).await });
            AttemptIo::sending(send, self.payload.streaming())
        };
        self.account.attempt_started(attempt, deployment);
        self.open.push(Open {
            id: attempt,
            deployment,
            io,
            n_output_chunks: 0,
            usage: None,
            finished: false,
            held: Vec::new(),
            prefill_tokens,
            answering: false,
            settled: false,
        });
    }

    /// Why no deployment of the request's alias speaks a protocol that can express it.
    pub(crate) fn why_untranslatable(&self) -> Option<(String, String)> {
        let alias = self.machine.alias();
        let first = *self.gw.config.aliases.get(usize::from(alias.0))?.deployments.first()?;
        let body = self.payload.body(self.gw.config.deployment(first));
        self.gw.why_untranslatable(alias, &body)
    }

    /// An attempt was booked in the router: metrics and logs.
    fn closed(&mut self, deployment: DeploymentId, end: &AttemptEnd) {
        let gw = self.gw.clone();
        let d = gw.config.deployment(deployment);
        match end {
            AttemptEnd::Success => gw.metrics.attempt(deployment, AttemptResult::Ok),
            AttemptEnd::Failed(error) => {
                gw.metrics.attempt(deployment, AttemptResult::Failed(error));
                tracing::warn!(message = "Upstream attempt failed.", deployment = %d.name, kind = error.kind(), %error);
            }
            AttemptEnd::Abandoned(why) => {
                gw.metrics.attempt(deployment, AttemptResult::Abandoned);
                let why = match why {
                    Abandon::LostHedge => "another attempt answered first",
                    Abandon::Deadline => "the request deadline passed",
                    Abandon::CallerGone => "the caller went away",
                };
                tracing::info!(message = "Upstream attempt abandoned.", deployment = %d.name, why);
            }
        }
    }

    /// What an attempt used, if it produced anything: reported usage (unless implausible) or
    /// the prompt estimate and the counted output.
    pub(crate) fn usage_of(&self, o: &Open) -> Option<Usage> {
        if o.n_output_chunks == 0 && o.usage.is_none() {
            return None;
        }
        let d = self.gw.config.deployment(o.deployment);
        let estimate = self.prompt_estimate.saturating_add(o.prefill_tokens);
        Some(crate::chat::usage_from(&self.gw, d, o.usage, estimate, o.n_output_chunks))
    }

    /// Books what an ending attempt used, once: in the accounts, and in the caller's usage if
    /// its output was the caller's.
    pub(crate) fn settle(&mut self, id: AttemptId) {
        let Some(o) = self.open.iter().find(|o| o.id == id && !o.settled) else { return };
        let usage = self.usage_of(o);
        let (reported, prefill, answering, deployment) =
            (o.usage.is_some_and(|u| !u.implausible), o.prefill_tokens, o.answering, o.deployment);
        if let Some(o) = self.open_mut(id) {
            o.settled = true;
        }
        if let Some(usage) = usage {
            let gw = self.gw.clone();
            let d = gw.config.deployment(deployment);
            self.book(d, &usage);
            self.account.attempt_output(id, usage.completion_tokens);
            if answering {
                self.caller_usage(d, &usage, reported, prefill);
            }
        }
    }

    /// Books an attempt's usage in the accounts.
    fn book(&self, d: &Deployment, usage: &Usage) {
        let dollars = list_cost(&d.price, usage);
        self.gw.metrics.usage(d.id, usage, dollars);
        if d.commitment.is_some() {
            self.gw.router().record_spend(d.commitment, dollars);
        }
    }

    /// The caller's usage: the prompt from the first attempt that reported it (less the prefill
    /// it was given), every attempt's output.
    fn caller_usage(&mut self, d: &Deployment, usage: &Usage, reported: bool, prefill_tokens: u32) {
        let first = self.usage == Usage::default();
        if first || (reported && !self.prompt_reported) {
            self.usage.prompt_tokens = usage.prompt_tokens.saturating_sub(u64::from(prefill_tokens));
            self.usage.cached_prompt_tokens = usage.cached_prompt_tokens.min(self.usage.prompt_tokens);
            self.prompt_reported = reported;
            self.account.bill_prompt(&d.price, &self.usage);
        }
        self.usage.completion_tokens = self.usage.completion_tokens.saturating_add(usage.completion_tokens);
        self.account.bill_output(&d.price, usage.completion_tokens);
    }

    /// Ends the request's account (see [`Account::conclude`]) with the caller's usage.
    pub(crate) fn conclude(&mut self, status: u16, outcome: &'static str) -> Option<switchyard_ledger::RequestRecord> {
        let answered_by = self.machine.route().last().copied();
        self.account.conclude(&self.usage, answered_by, status, outcome)
    }

    /// The attempt failed as this side saw it.
    pub(crate) fn failed(&mut self, id: AttemptId, error: AttemptError) {
        self.settle(id);
        let now = self.gw.now();
        self.with_ctx(|m, ctx| m.on_failed(ctx, id, error, now));
        self.open.retain(|o| o.id != id);
        self.act();
    }

    /// The attempt ended cleanly.
    pub(crate) fn done(&mut self, id: AttemptId) {
        let used = self.open.iter().find(|o| o.id == id).and_then(|o| self.usage_of(o)).map(|u| u.total());
        self.settle(id);
        let now = self.gw.now();
        self.with_ctx(|m, ctx| m.on_done(ctx, id, used, now));
        self.open.retain(|o| o.id != id);
        self.act();
    }

    /// Failed attempts so far as (deployment name, reason), for errors and logs.
    pub(crate) fn failures(&self) -> Vec<crate::error::FailedAttempt> {
        self.machine.failures().iter().map(|(d, e)| (self.gw.config.deployment(*d).name.clone(), e.clone())).collect()
    }
}

impl Drop for Driver {
    /// The caller went away before the end: every open attempt is abandoned and booked.
    fn drop(&mut self) {
        if self.machine.is_done() {
            // Concluded by its handler, unless the caller left after the end and before then.
            let record = self.conclude(499, "client_closed");
            crate::account::submit_detached(&self.gw, record);
            return;
        }
        let ids: Vec<AttemptId> = self.open.iter().map(|o| o.id).collect();
        for id in ids {
            self.settle(id);
        }
        let now = self.gw.now();
        self.with_ctx(|m, ctx| m.abandon_all(ctx, now));
        self.act();
        // Billed for what it was sent; recorded as the caller's leaving.
        let record = self.conclude(499, "client_closed");
        crate::account::submit_detached(&self.gw, record);
    }
}
