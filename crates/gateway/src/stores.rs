//! What a gateway keeps outside itself: opening the ledger its config names and the Redis its
//! replicas share counters and deployment signals through, and reading back at start what the ledger already holds (today's and this month's spend against tenants'
//! budgets, each commitment's spend so far).

use std::time::Duration;

use switchyard_core::calendar::{Period, window_start};
use switchyard_core::config::{Config, LedgerPolicy};
use switchyard_ledger::{Group, Ledger, Policy, Settings, Store, StoreError};

use crate::Gateway;

/// Opens the ledger's store and starts its writer, as `config.ledger` says.
pub async fn open_ledger(config: &Config) -> Result<(Store, Ledger), StoreError> {
    let settings = &config.ledger;
    let store = Store::open(settings.url.expose()).await?;
    let on_failure = match &settings.on_failure {
        LedgerPolicy::Spool(path) => Policy::Spool(path.clone()),
        LedgerPolicy::Refuse => Policy::Refuse,
    };
    let ledger = Ledger::start(
        store.clone(),
        Settings {
            queue: settings.queue,
            batch: settings.batch,
            linger: settings.linger,
            on_failure,
            ..Settings::default()
        },
    );
    Ok((store, ledger))
}

/// Counts what the ledger recorded before this start: each tenant's spend today and this month
/// (UTC) against its budgets, and each commitment's spend in its term so far (on top of the
/// config's `spent_usd`, which is what was spent before the ledger).
pub async fn restore(gw: &Gateway, store: &Store) -> Result<(), StoreError> {
    gw.refresh_keys().await;
    let now = gw.now();
    let now_ms = gw.unix_ms(now);
    let day_start = window_start(Period::Day, now_ms);
    let month_start = window_start(Period::Month, now_ms);
    let to = now_ms + 1;
    let today = store.spend(Group::Tenant, day_start, to).await?;
    let month = store.spend(Group::Tenant, month_start, to).await?;
    let of = |rows: &[switchyard_ledger::SpendRow], name: &str| {
        rows.iter().find(|r| r.key == name).map_or(0.0, |r| r.cost_usd)
    };
    for t in &gw.config.tenants {
        gw.router().tenancy().preload(t.id, of(&today, &t.name), of(&month, &t.name), now);
    }
    for c in &gw.config.commitments {
        let names: Vec<String> = c.deployments.iter().map(|d| gw.config.deployment(*d).name.clone()).collect();
        let elapsed = i64::try_from(c.elapsed_at_start.as_millis()).unwrap_or(i64::MAX);
        let spent = store.spend_for_deployments(&names, now_ms.saturating_sub(elapsed), to).await?;
        gw.router().record_spend(Some(c.id), spent);
    }
    Ok(())
}

/// Flushes the ledger at shutdown, within `limit`; returns what it counted.
pub async fn close_ledger(ledger: &Ledger, limit: Duration) -> Option<switchyard_ledger::Counts> {
    tokio::time::timeout(limit, ledger.shutdown()).await.ok()
}

/// What replicas share through Redis: tenants' and deployments' allowances, tenants' budget
/// windows, and deployments' ejections, cool-downs, recoveries and attempts in flight.
pub struct Shared {
    pub counters: std::sync::Arc<switchyard_shared::RedisCounters>,
    pub budgets: std::sync::Arc<switchyard_shared::RedisWindows>,
    pub signals: std::sync::Arc<switchyard_shared::RedisSignals>,
}

/// Connects to the Redis of `config.shared`, if any, and starts syncing the config's
/// allowances, budgets and deployment signals with the other replicas. Blocks for up to a couple of seconds (call
/// it before the workers start). With `on_failure: open` a Redis that does not answer yet is
/// not an error: the replica starts on its own view and connects when Redis does. Budget
/// windows follow the wall clock read here (the gateway's own reading, moments later, differs
/// by the start-up time only).
pub fn start_shared(config: &Config) -> Result<Option<Shared>, switchyard_shared::SharedError> {
    use switchyard_shared::{RedisCounters, RedisSignals, RedisWindows, SharedError};
    let Some(url) = &config.shared.redis else { return Ok(None) };
    let (specs, _) = switchyard_core::counters::limit_specs(config);
    let budgets = switchyard_core::tenancy::budget_specs(config);
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let calendar = switchyard_core::tenancy::Calendar { unix_ms_at_zero: unix_ms };
    let settings = switchyard_shared::Settings::from_config(&config.shared);
    let prefix = &config.shared.prefix;
    let counters = match RedisCounters::start(url.expose(), prefix, &specs, settings.clone()) {
        Ok(counters) => counters,
        Err(error @ SharedError::Unreachable { .. }) if config.shared.fail_open => {
            tracing::warn!(message = "Redis does not answer; starting on this replica's own limits (on_failure: open).", %error);
            RedisCounters::start_detached(url.expose(), prefix, &specs, settings.clone())?
        }
        Err(error) => return Err(error),
    };
    let deployments = switchyard_core::signals::signal_specs(config);
    let (budgets, signals) = match counters.connected() {
        true => (
            RedisWindows::start(url.expose(), prefix, &budgets, calendar, settings.clone())?,
            RedisSignals::start(url.expose(), prefix, &deployments, settings)?,
        ),
        false => (
            RedisWindows::start_detached(url.expose(), prefix, &budgets, calendar, settings.clone())?,
            RedisSignals::start_detached(url.expose(), prefix, &deployments, settings)?,
        ),
    };
    Ok(Some(Shared { counters, budgets, signals }))
}
