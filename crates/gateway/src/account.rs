//! A request's account: its admission against the tenant's limits and budgets (and its managed
//! key's own), what the caller is billed, every attempt it made, and its ledger record. Concluded exactly once: by the
//! handler when it answers (which waits for the record to be durable before the last byte, and
//! answers with an error instead when it cannot be), or by the driver's drop when the caller
//! went away first.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::config::{Alias, Config, DeploymentId, KeyId, Price, Tenant};
use switchyard_core::lifecycle::{Abandon, AttemptEnd, AttemptId};
use switchyard_core::tenancy::{Admission, Estimate, Refusal};
use switchyard_core::usage::{Usage, list_cost};
use switchyard_ledger::{AttemptRecord, RequestRecord, Text};
use tokio::time::Instant;

use crate::Gateway;
use crate::error::ApiError;

/// How long a finished request waits for its record to become durable. Past it, the caller
/// gets an error in place of the answer's end: a response received whole is always on record.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// Who is asking, as the edge and authentication found it.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) request_id: Arc<str>,
    pub(crate) key_id: switchyard_core::config::KeyId,
    /// What the caller's managed key narrows or adds, when it has settings of its own.
    pub(crate) scope: Option<Arc<crate::keys::Scope>>,
}

pub(crate) struct Account {
    gw: Arc<Gateway>,
    admission: Option<Admission>,
    /// The tenant as the caller's key narrows it, for every plan of the request.
    view: Option<Arc<Tenant>>,
    /// The ledger record being filled in; `None` without a ledger (nothing is built then).
    record: Option<RequestRecord>,
    started: Instant,
    /// Attempts under way: when each started, and the output it produced.
    running: Vec<(AttemptId, DeploymentId, Instant, u64)>,
    prompt_usd: f64,
    output_usd: f64,
    first_output: Option<Instant>,
    /// The deployment of the latest attempt: where a failed request was last tried.
    last_tried: Option<DeploymentId>,
    concluded: bool,
}

// === impl Account ===

impl Account {
    /// Admits the request against the tenant's limits and budgets, and its key's own, reserving
    /// its estimate: the prompt and the output it may produce, priced at the alias's dearest
    /// deployment. An alias the tenant allows and the key does not is refused here (403), as
    /// the tenant's own refusal is.
    pub(crate) fn open(
        gw: &Arc<Gateway>,
        caller: &Caller,
        tenant: &Tenant,
        alias: &Alias,
        stream: bool,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Result<Account, ApiError> {
        if let Some(ledger) = &gw.ledger
            && !ledger.healthy()
        {
            return Err(ApiError::Unavailable(
                "the ledger cannot record requests right now (ledger.on_failure: refuse)".to_owned(),
            ));
        }
        let scope = caller.scope.as_deref();
        if let Some(scope) = scope
            && !gw.config.tenant_may_use(&scope.view, alias.id)
        {
            let model = crate::caller_text(&alias.name);
            return Err(ApiError::Forbidden(format!("this key may not use the model '{model}'")));
        }
        let estimate = Estimate::for_alias(&gw.config, alias, input_tokens, output_tokens);
        let now = gw.now();
        let gate = scope.and_then(|s| s.gate.as_ref());
        let admission = gw.router().admit_key(tenant, gate, estimate, now).map_err(|r| refused(gw, tenant, r))?;
        let record = gw.ledger.as_ref().map(|_| {
            let (names, at_ms) = (&gw.names, gw.unix_ms(now));
            let key_id = key_text(caller.key_id);
            let mut record = RequestRecord::new(caller.request_id.clone(), at_ms, names.tenant(tenant), key_id);
            record.alias = names.alias(alias);
            record.stream = stream;
            record
        });
        Ok(Account {
            gw: gw.clone(),
            admission: Some(admission),
            view: scope.map(|s| s.view.clone()),
            record,
            started: Instant::now(),
            running: Vec::new(),
            prompt_usd: 0.0,
            output_usd: 0.0,
            first_output: None,
            last_tried: None,
            concluded: false,
        })
    }

    /// The tenant as the caller's key narrows it, if it does: what the request is planned for.
    pub(crate) fn view(&self) -> Option<Arc<Tenant>> {
        self.view.clone()
    }

    /// The caller's protocol, as the ledger names it (`openai`, `anthropic`).
    pub(crate) fn set_protocol(&mut self, protocol: &'static str) {
        if let Some(record) = &mut self.record {
            record.protocol = Text::from_static(protocol);
        }
    }

    pub(crate) fn attempt_started(&mut self, id: AttemptId, deployment: DeploymentId) {
        self.running.push((id, deployment, Instant::now(), 0));
        self.last_tried = Some(deployment);
    }

    /// What an ending attempt produced (booked just before the machine closes it).
    pub(crate) fn attempt_output(&mut self, id: AttemptId, output_tokens: u64) {
        if let Some(r) = self.running.iter_mut().find(|r| r.0 == id) {
            r.3 = output_tokens;
        }
    }

    /// A held-back answer starts over: the caller has been billed nothing yet.
    pub(crate) fn restart(&mut self) {
        self.prompt_usd = 0.0;
        self.output_usd = 0.0;
        self.first_output = None;
    }

    pub(crate) fn attempt_ended(&mut self, id: AttemptId, end: &AttemptEnd) {
        let Some(i) = self.running.iter().position(|(a, ..)| *a == id) else { return };
        let (_, deployment, started, output_tokens) = self.running.remove(i);
        let Some(record) = &mut self.record else { return };
        let outcome = match end {
            AttemptEnd::Success => "ok",
            AttemptEnd::Failed(error) => error.kind(),
            AttemptEnd::Abandoned(Abandon::LostHedge) => "lost_hedge",
            AttemptEnd::Abandoned(Abandon::Deadline) => "deadline",
            AttemptEnd::Abandoned(Abandon::CallerGone) => "client_closed",
        };
        record.attempts.push(AttemptRecord {
            deployment: self.gw.names.deployment(deployment)[0].clone(),
            outcome: Text::from_static(outcome),
            started_ms: millis(started.saturating_duration_since(self.started)),
            duration_ms: millis(started.elapsed()),
            output_tokens,
        });
    }

    /// The caller's prompt, priced where it was counted (a later report may replace it).
    pub(crate) fn bill_prompt(&mut self, price: &Price, usage: &Usage) {
        self.prompt_usd = list_cost(price, &Usage { completion_tokens: 0, ..*usage });
    }

    /// Output the caller received from one attempt.
    pub(crate) fn bill_output(&mut self, price: &Price, completion_tokens: u64) {
        self.output_usd += list_cost(price, &Usage { completion_tokens, ..Usage::default() });
    }

    /// The answer's first output reached (or was ready for) the caller.
    pub(crate) fn first_output(&mut self) {
        self.first_output.get_or_insert_with(Instant::now);
    }

    /// Ends the account: settles the admission to what the caller is billed and returns the
    /// record to submit ([`durable`] does). `answered_by` is where the answer came from, if
    /// anywhere. Later calls, and a gateway without a ledger, return `None`.
    pub(crate) fn conclude(
        &mut self,
        usage: &Usage,
        answered_by: Option<DeploymentId>,
        status: u16,
        outcome: &'static str,
    ) -> Option<RequestRecord> {
        if std::mem::replace(&mut self.concluded, true) {
            return None;
        }
        let billed = if status < 400 || outcome == "client_closed" { self.prompt_usd + self.output_usd } else { 0.0 };
        let billed_tokens = if billed > 0.0 { usage.total() } else { 0 };
        if let Some(admission) = self.admission.take() {
            self.gw.router().settle(admission, billed_tokens, billed, self.gw.now());
        }
        let mut r = self.record.take()?;
        if let Some(d) = answered_by.or(self.last_tried) {
            let [name, cloud, region, jurisdiction] = self.gw.names.deployment(d).clone();
            (r.deployment, r.cloud, r.region, r.jurisdiction) =
                (Some(name), Some(cloud), Some(region), Some(jurisdiction));
        }
        r.status = status;
        r.outcome = Text::from_static(outcome);
        r.input_tokens = usage.prompt_tokens;
        r.output_tokens = usage.completion_tokens;
        r.cached_tokens = usage.cached_prompt_tokens;
        r.cost_usd = billed;
        r.latency_ms = millis(self.started.elapsed());
        r.ttft_ms = self.first_output.map(|t| millis(t.saturating_duration_since(self.started)));
        Some(r)
    }
}

impl Drop for Account {
    /// A request dropped before it concluded (the caller went away): billed for what it got.
    fn drop(&mut self) {
        if !self.concluded {
            let usage = Usage::default();
            let record = self.conclude(&usage, None, 499, "client_closed");
            submit_detached(&self.gw, record);
        }
    }
}

/// Submits the record of a request whose caller is gone: nobody waits for it, but it is not
/// dropped when the queue is full (a task waits for room).
pub(crate) fn submit_detached(gw: &Arc<Gateway>, record: Option<RequestRecord>) {
    let (Some(ledger), Some(record)) = (&gw.ledger, record) else { return };
    match ledger.try_submit(record) {
        Ok(_) => {}
        Err(switchyard_ledger::SubmitError::Full(record)) => match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let gw = gw.clone();
                runtime.spawn(async move {
                    if let Some(ledger) = &gw.ledger
                        && ledger.submit(*record).await.is_err()
                    {
                        gw.metrics.ledger_dropped();
                    }
                });
            }
            Err(_) => gw.metrics.ledger_dropped(),
        },
        Err(switchyard_ledger::SubmitError::Closed(_)) => gw.metrics.ledger_dropped(),
    }
}

/// Submits a concluded request's record (waiting for room in the ledger's queue) and waits,
/// bounded, until it is durable. `Err` when it could not be made durable: the caller must then
/// not receive the answer's end.
pub(crate) async fn durable(gw: &Gateway, record: Option<RequestRecord>) -> Result<(), ApiError> {
    let (Some(ledger), Some(record)) = (&gw.ledger, record) else { return Ok(()) };
    let unrecorded = |why: &str| {
        gw.metrics.ledger_dropped();
        tracing::error!(message = "A request's record could not be made durable; its answer is withheld.", why);
        Err(ApiError::Unavailable(format!("the request could not be recorded in the ledger ({why})")))
    };
    let written = tokio::time::timeout(RECORD_WAIT, async {
        match ledger.submit(record).await {
            Ok(receipt) => receipt.await.map_err(|_| "the ledger could not write it"),
            Err(_) => Err("the ledger is shut down"),
        }
    })
    .await;
    match written {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => unrecorded(why),
        Err(_) => unrecorded("the ledger did not confirm it in time"),
    }
}

/// The names a record carries, each held once for the gateway's life: a record shares them
/// instead of copying them per request.
pub(crate) struct Names {
    tenants: Vec<Text>,
    aliases: Vec<Text>,
    /// Per deployment: its name, its cloud's, its region and its jurisdiction.
    deployments: Vec<[Text; 4]>,
}

impl Names {
    pub(crate) fn new(config: &Config) -> Names {
        let text = |s: &str| Text::from(s);
        Names {
            tenants: config.tenants.iter().map(|t| text(&t.name)).collect(),
            aliases: config.aliases.iter().map(|a| text(&a.name)).collect(),
            deployments: config
                .deployments
                .iter()
                .map(|d| [text(&d.name), text(&config.cloud_of(d.id).name), text(&d.region), text(&d.jurisdiction)])
                .collect(),
        }
    }

    /// The tenant's name (a key's narrowed view of it keeps its id and name).
    fn tenant(&self, tenant: &Tenant) -> Text {
        let held = self.tenants.get(usize::from(tenant.id.0)).filter(|n| **n == *tenant.name);
        held.cloned().unwrap_or_else(|| Text::from(tenant.name.as_str()))
    }

    fn alias(&self, alias: &Alias) -> Text {
        let held = self.aliases.get(usize::from(alias.id.0)).filter(|n| **n == *alias.name);
        held.cloned().unwrap_or_else(|| Text::from(alias.name.as_str()))
    }

    /// A deployment of the config the names were made from: name, cloud, region, jurisdiction.
    fn deployment(&self, id: DeploymentId) -> &[Text; 4] {
        &self.deployments[usize::from(id.0)]
    }
}

/// A key id as a record holds it (`key_…`), formatted once per key and worker thread: each
/// thread keeps up to 64 (then forgets them all and starts again).
fn key_text(id: KeyId) -> Text {
    const KEPT: usize = 64;
    thread_local! {
        static KEYS: std::cell::RefCell<Vec<(KeyId, Text)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    KEYS.with_borrow_mut(|keys| {
        if let Some((_, text)) = keys.iter().find(|(k, _)| *k == id) {
            return text.clone();
        }
        if keys.len() == KEPT {
            keys.clear();
        }
        let text = Text::from(id.to_string());
        keys.push((id, text.clone()));
        text
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A tenant's (or its key's) limit or budget said no: a 429 that says which and when to come
/// back.
fn refused(gw: &Gateway, tenant: &Tenant, refusal: Refusal) -> ApiError {
    gw.metrics.tenant_refused(tenant.id, &refusal);
    let whose = if refusal.is_key() { "Refused by the key's own limits." } else { "Refused by the tenant's limits." };
    tracing::info!(message = whose, tenant = %tenant.name, ?refusal);
    ApiError::TenantLimit(refusal)
}

#[cfg(test)]
mod tests {
    use switchyard_core::config::key_id;

    use super::*;

    #[test]
    fn key_ids_are_formatted_once_and_always_right() {
        let ids: Vec<KeyId> = (0..200u8).map(|i| key_id(&[i; 32])).collect();
        // Twice round more ids than a thread keeps, so that some are forgotten and made again.
        for _ in 0..2 {
            for id in &ids {
                assert_eq!(key_text(*id), id.to_string());
            }
        }
        let first = key_text(ids[0]);
        let again = key_text(ids[0]);
        assert!(matches!((&first, &again), (Text::Shared(a), Text::Shared(b)) if Arc::ptr_eq(a, b)), "held once");
    }
}
