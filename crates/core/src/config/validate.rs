//! Turns the raw config into the typed one: defaults, ranges, references, secrets.
//!
//! Every problem is collected (not just the first) with the path of the value at fault, e.g.
//! `deployments[2].price.input_per_mtok: must be >= 0`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::emulation::emulation_from_raw;
use super::raw::{RawConfig, RawDeployment, RawPriority, RawRouting, RawServer, RawTenant};
use super::secret::{SecretSource, resolve};
use super::*;

/// The longest duration any `*_ms` setting may give: 365 days. Longer values would only
/// overflow clocks downstream (an `Instant` plus a timeout), so they are refused.
pub(crate) const MAX_MS: u64 = 365 * 24 * 3_600 * 1_000;
/// The longest commitment term: 100 years.
const MAX_TERM_DAYS: f64 = 36_500.0;
/// The largest `server.body_limit_bytes`: 1 GiB.
const MAX_BODY_LIMIT: u64 = 1 << 30;
/// The largest `server.buffered_body_limit_bytes`: 1 TiB.
const MAX_BUFFERED_BODY_LIMIT: u64 = 1 << 40;
/// The default `server.buffered_body_limit_bytes`: 64 MiB.
const DEFAULT_BUFFERED_BODY_LIMIT: u64 = 64 << 20;
/// Ids are `u16`: at most this many clouds, deployments, aliases, tenants or commitments.
const MAX_ITEMS: usize = u16::MAX as usize;

/// The SHA-256 of an API key, the only form in which keys are stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub(super) fn validate(raw: RawConfig, secrets: &dyn SecretSource) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let server = server(raw.server.unwrap_or_default(), secrets, &mut errors);
    let routing = routing(raw.routing.unwrap_or_default(), &mut errors);
    let ledger = super::stores::ledger(raw.ledger.unwrap_or_default(), secrets, &mut errors);
    let shared = super::stores::shared(raw.shared.unwrap_or_default(), secrets, &mut errors);

    let mut clouds = Vec::new();
    let mut cloud_index = HashMap::new();
    for (i, c) in raw.clouds.iter().enumerate() {
        let path = format!("clouds[{i}]");
        check_name(&c.name, &format!("{path}.name"), &mut errors);
        if cloud_index.insert(c.name.clone(), CloudId(i as u16)).is_some() {
            errors.push(format!("{path}.name: duplicate cloud {:?}", c.name));
        }
        clouds.push(super::protocols::cloud(c, &path, secrets, &mut errors));
    }
    if clouds.is_empty() {
        errors.push("clouds: at least one cloud is required".to_owned());
    }
    check_count("clouds", clouds.len(), &mut errors);

    let mut deployments = Vec::new();
    let mut deployment_index = HashMap::new();
    for (i, d) in raw.deployments.iter().enumerate() {
        let path = format!("deployments[{i}]");
        if deployment_index.insert(d.name.clone(), DeploymentId(i as u16)).is_some() {
            errors.push(format!("{path}.name: duplicate deployment {:?}", d.name));
        }
        let cloud = match cloud_index.get(&d.cloud) {
            Some(id) => *id,
            None => {
                errors.push(format!("{path}.cloud: unknown cloud {:?}", d.cloud));
                CloudId(0)
            }
        };
        let protocol = clouds.get(usize::from(cloud.0)).map_or(Protocol::OpenAi, |c: &Cloud| c.protocol);
        deployments.push(deployment(d, i, cloud, protocol, &path, secrets, &mut errors));
    }
    if deployments.is_empty() {
        errors.push("deployments: at least one deployment is required".to_owned());
    }
    check_count("deployments", deployments.len(), &mut errors);
    check_count("aliases", raw.aliases.len(), &mut errors);
    check_count("tenants", raw.tenants.len(), &mut errors);
    check_count("commitments", raw.commitments.len(), &mut errors);

    let mut alias_index = HashMap::new();
    for (i, a) in raw.aliases.iter().enumerate() {
        check_name(&a.name, &format!("aliases[{i}].name"), &mut errors);
        if alias_index.insert(a.name.clone(), AliasId(i as u16)).is_some() {
            errors.push(format!("aliases[{i}].name: duplicate alias {:?}", a.name));
        }
    }
    let mut aliases = Vec::new();
    for (i, a) in raw.aliases.iter().enumerate() {
        let path = format!("aliases[{i}]");
        let policy = match a.policy.as_deref().unwrap_or("balanced") {
            "cost" => Policy::Cost,
            "latency" => Policy::Latency,
            "balanced" => Policy::Balanced,
            "priority" => Policy::Priority,
            "commitment" => Policy::Commitment,
            other => {
                errors.push(format!(
                    "{path}.policy: unknown policy {other:?} (expected cost, latency, balanced, priority or commitment)"
                ));
                Policy::Balanced
            }
        };
        let mut members = Vec::new();
        for (j, name) in a.deployments.iter().enumerate() {
            match deployment_index.get(name) {
                Some(id) if members.contains(id) => {
                    errors.push(format!("{path}.deployments[{j}]: {name:?} is listed twice"));
                }
                Some(id) => members.push(*id),
                None => errors.push(format!("{path}.deployments[{j}]: unknown deployment {name:?}")),
            }
        }
        if a.deployments.is_empty() {
            errors.push(format!("{path}.deployments: at least one deployment is required"));
        }
        let kinds: HashSet<_> = members.iter().map(|id| deployments[usize::from(id.0)].kind).collect();
        if kinds.len() > 1 {
            errors.push(format!("{path}.deployments: mixes chat and embeddings deployments"));
        }
        let kind = members.first().map_or(DeploymentKind::Chat, |id| deployments[usize::from(id.0)].kind);
        let mut fallbacks = Vec::new();
        for (j, name) in a.fallbacks.iter().enumerate() {
            match alias_index.get(name) {
                Some(id) if *id == AliasId(i as u16) => {
                    errors.push(format!("{path}.fallbacks[{j}]: an alias cannot fall back to itself"));
                }
                Some(id) => fallbacks.push(*id),
                None => errors.push(format!("{path}.fallbacks[{j}]: unknown alias {name:?}")),
            }
        }
        let hedge_after = a.hedge_after_ms.map(|ms| bounded_ms(ms, &format!("{path}.hedge_after_ms"), &mut errors));
        if hedge_after.is_some_and(|h| h.is_zero()) {
            errors.push(format!("{path}.hedge_after_ms: must be > 0"));
        }
        if hedge_after.is_some() && kind == DeploymentKind::Embeddings {
            errors.push(format!("{path}.hedge_after_ms: only chat aliases hedge"));
        }
        if let Some(k) = a.hedge_after_ttft {
            if !(k.is_finite() && (1.0..=100.0).contains(&k)) {
                errors.push(format!("{path}.hedge_after_ttft: must be between 1 and 100"));
            }
            if hedge_after.is_some() {
                errors.push(format!("{path}.hedge_after_ttft: give either hedge_after_ms or hedge_after_ttft"));
            }
            if kind == DeploymentKind::Embeddings {
                errors.push(format!("{path}.hedge_after_ttft: only chat aliases hedge"));
            }
        }
        if a.hold_back_tokens == Some(0) {
            errors.push(format!("{path}.hold_back_tokens: must be > 0"));
        }
        if a.hold_back_tokens.is_some() && kind == DeploymentKind::Embeddings {
            errors.push(format!("{path}.hold_back_tokens: only chat aliases stream"));
        }
        aliases.push(Alias {
            id: AliasId(i as u16),
            name: a.name.clone(),
            policy,
            kind,
            deployments: members,
            fallbacks,
            hedge_after,
            hedge_after_ttft: a.hedge_after_ttft.filter(|k| k.is_finite() && (1.0..=100.0).contains(k)),
            hold_back_tokens: a.hold_back_tokens.filter(|n| *n > 0),
        });
    }

    let mut tenants = Vec::new();
    let mut key_index = HashMap::new();
    let mut tenant_names = HashSet::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        let path = format!("tenants[{i}]");
        check_name(&t.name, &format!("{path}.name"), &mut errors);
        if !tenant_names.insert(t.name.as_str()) {
            errors.push(format!("{path}.name: duplicate tenant {:?}", t.name));
        }
        if t.keys.is_empty() {
            errors.push(format!("{path}.keys: at least one key hash is required"));
        }
        for (j, k) in t.keys.iter().enumerate() {
            match parse_key_hash(k) {
                Some(h) => {
                    if key_index.insert(h, TenantId(i as u16)).is_some() {
                        errors.push(format!("{path}.keys[{j}]: this key hash is used twice"));
                    }
                }
                None => {
                    errors.push(format!("{path}.keys[{j}]: must be sha256:<64 hex digits> (see `switchyard hash-key`)"))
                }
            }
        }
        if t.jurisdictions.is_empty() {
            errors.push(format!("{path}.jurisdictions: at least one jurisdiction is required"));
        }
        for (j, jur) in t.jurisdictions.iter().enumerate() {
            check_jurisdiction(jur, &format!("{path}.jurisdictions[{j}]"), &mut errors);
        }
        let tenant_aliases = if t.aliases.iter().any(|a| a == "*") {
            None
        } else {
            let mut ids = Vec::new();
            for (j, name) in t.aliases.iter().enumerate() {
                match alias_index.get(name) {
                    Some(id) => ids.push(*id),
                    None => errors.push(format!("{path}.aliases[{j}]: unknown alias {name:?}")),
                }
            }
            Some(ids)
        };
        let workload = match t.workload.as_deref().unwrap_or("interactive") {
            "interactive" => Workload::Interactive,
            "batch" => Workload::Batch,
            "training" => Workload::Training,
            "research" => Workload::Research,
            other => {
                errors.push(format!(
                    "{path}.workload: unknown workload {other:?} (expected interactive, batch, training or research)"
                ));
                Workload::Interactive
            }
        };
        let priority = match t.priority {
            Some(RawPriority::Low) => Priority::Low,
            Some(RawPriority::Normal) => Priority::Normal,
            Some(RawPriority::High) => Priority::High,
            None => workload.default_priority(),
        };
        let (limits, budgets) = tenant_limits(t, &path, &mut errors);
        tenants.push(Tenant {
            id: TenantId(i as u16),
            name: t.name.clone(),
            jurisdictions: t.jurisdictions.clone(),
            jurisdiction_mask: 0,
            aliases: tenant_aliases,
            workload,
            priority,
            limits,
            budgets,
        });
    }

    let mut commitments = Vec::new();
    let mut commitment_names = HashSet::new();
    for (i, c) in raw.commitments.iter().enumerate() {
        let path = format!("commitments[{i}]");
        check_name(&c.name, &format!("{path}.name"), &mut errors);
        if !commitment_names.insert(c.name.as_str()) {
            errors.push(format!("{path}.name: duplicate commitment {:?}", c.name));
        }
        let Some(cloud) = cloud_index.get(&c.cloud).copied() else {
            errors.push(format!("{path}.cloud: unknown cloud {:?}", c.cloud));
            continue;
        };
        // Also keeps the conversion to a `Duration` below from overflowing.
        check_commitment_numbers(c, &path, &mut errors);
        let elapsed = c.elapsed_days.unwrap_or(0.0);
        let spent = c.spent_usd.unwrap_or(0.0);
        let members: Vec<DeploymentId> = match &c.deployments {
            None => deployments.iter().filter(|d| d.cloud == cloud).map(|d| d.id).collect(),
            Some(names) => names
                .iter()
                .enumerate()
                .filter_map(|(j, name)| match deployment_index.get(name) {
                    Some(id) if deployments[usize::from(id.0)].cloud == cloud => Some(*id),
                    Some(_) => {
                        errors.push(format!("{path}.deployments[{j}]: {name:?} is not a deployment of {}", c.cloud));
                        None
                    }
                    None => {
                        errors.push(format!("{path}.deployments[{j}]: unknown deployment {name:?}"));
                        None
                    }
                })
                .collect(),
        };
        let id = CommitmentId(i as u16);
        for d in &members {
            let deployment = &mut deployments[usize::from(d.0)];
            if deployment.commitment.is_some() {
                errors.push(format!(
                    "{path}: deployment {:?} already counts against another commitment",
                    deployment.name
                ));
            }
            deployment.commitment = Some(id);
        }
        // Saturates: out-of-range values were reported above and the config will be refused.
        let day = |days: f64| Duration::try_from_secs_f64(days * 86_400.0).unwrap_or(Duration::ZERO);
        commitments.push(Commitment {
            id,
            name: c.name.clone(),
            cloud,
            amount_usd: c.amount_usd,
            term: day(c.term_days),
            elapsed_at_start: day(elapsed),
            spent_at_start: spent,
            deployments: members,
        });
    }

    // Intern jurisdictions as bits and (cloud, region) pairs as ids, for fast planning.
    let mut jurisdiction_bits: HashMap<String, u64> = HashMap::new();
    let mut bit_of = |j: &str, errors: &mut Vec<String>| -> u64 {
        let next = jurisdiction_bits.len();
        *jurisdiction_bits.entry(j.to_owned()).or_insert_with(|| {
            if next >= 64 {
                errors.push("jurisdictions: at most 64 distinct jurisdictions are supported".to_owned());
                0
            } else {
                1u64 << next
            }
        })
    };
    let mut regions: HashMap<(CloudId, String), u16> = HashMap::new();
    for d in &mut deployments {
        d.jurisdiction_bit = bit_of(&d.jurisdiction, &mut errors);
        let next = regions.len() as u16;
        d.region_id = *regions.entry((d.cloud, d.region.clone())).or_insert(next);
    }
    for t in &mut tenants {
        t.jurisdiction_mask = t.jurisdictions.iter().fold(0, |mask, j| mask | bit_of(j, &mut errors));
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let n_regions = regions.len();
    Ok(Config {
        server,
        routing,
        clouds,
        deployments,
        aliases,
        tenants,
        commitments,
        ledger,
        shared,
        n_regions,
        alias_index,
        key_index,
    })
}

fn deployment(
    d: &RawDeployment,
    i: usize,
    cloud: CloudId,
    protocol: Protocol,
    path: &str,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Deployment {
    check_name(&d.name, &format!("{path}.name"), errors);
    check_jurisdiction(&d.jurisdiction, &format!("{path}.jurisdiction"), errors);
    if d.region.is_empty() {
        errors.push(format!("{path}.region: must not be empty"));
    }
    if d.model.is_empty() {
        errors.push(format!("{path}.model: must not be empty"));
    }
    let endpoint = d.endpoint.trim_end_matches('/').to_owned();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        errors.push(format!("{path}.endpoint: must be an http:// or https:// URL"));
    }
    let kind = match d.kind.as_deref().unwrap_or("chat") {
        "chat" => DeploymentKind::Chat,
        "embeddings" => DeploymentKind::Embeddings,
        other => {
            errors.push(format!("{path}.kind: unknown kind {other:?} (expected chat or embeddings)"));
            DeploymentKind::Chat
        }
    };
    let mut price_of = |field: &str, v: Option<f64>| {
        let v = v.unwrap_or(0.0);
        if !(v >= 0.0 && v.is_finite()) {
            errors.push(format!("{path}.price.{field}: must be >= 0"));
        }
        v
    };
    let price = Price {
        input_per_mtok: price_of("input_per_mtok", Some(d.price.input_per_mtok)),
        output_per_mtok: price_of("output_per_mtok", d.price.output_per_mtok),
        cached_input_per_mtok: price_of("cached_input_per_mtok", d.price.cached_input_per_mtok),
    };
    let tier = match d.tier.as_deref().unwrap_or("on_demand") {
        "on_demand" => Tier::OnDemand,
        "reserved" => Tier::Reserved,
        other => {
            errors.push(format!("{path}.tier: unknown tier {other:?} (expected reserved or on_demand)"));
            Tier::OnDemand
        }
    };
    let utilisation_target = d.utilisation_target.unwrap_or(0.8);
    if !(utilisation_target > 0.0 && utilisation_target <= 1.0) {
        errors.push(format!("{path}.utilisation_target: must be above 0 and at most 1"));
    }
    if d.utilisation_target.is_some() && tier != Tier::Reserved {
        errors.push(format!("{path}.utilisation_target: only for tier: reserved"));
    }
    let raw_limits = d.limits.as_ref();
    let limits = Limits {
        rpm: raw_limits.and_then(|l| l.rpm),
        tpm: raw_limits.and_then(|l| l.tpm),
        concurrency: raw_limits.and_then(|l| l.concurrency),
    };
    for (field, zero) in
        [("rpm", limits.rpm == Some(0)), ("tpm", limits.tpm == Some(0)), ("concurrency", limits.concurrency == Some(0))]
    {
        if zero {
            errors.push(format!("{path}.limits.{field}: must be > 0 (omit it for no limit)"));
        }
    }
    let caps = d.capabilities.as_ref();
    let capabilities = Capabilities {
        context_window: caps.and_then(|c| c.context_window).unwrap_or(8192),
        tools: caps.and_then(|c| c.tools).unwrap_or(false),
        vision: caps.and_then(|c| c.vision).unwrap_or(false),
        streaming: caps.and_then(|c| c.streaming).unwrap_or(true),
        // Anthropic's Messages API continues a trailing assistant message natively.
        prefill: caps.and_then(|c| c.prefill).unwrap_or(protocol == Protocol::Anthropic),
    };
    super::protocols::check_deployment(protocol, kind, &d.model, &d.region, &d.jurisdiction, path, errors);
    if capabilities.context_window == 0 {
        errors.push(format!("{path}.capabilities.context_window: must be > 0"));
    }
    let emulation = d.emulation.as_ref().map(|e| emulation_from_raw(e, &format!("{path}.emulation"), secrets, errors));
    Deployment {
        id: DeploymentId(i as u16),
        name: d.name.clone(),
        cloud,
        region: d.region.clone(),
        region_id: 0,
        jurisdiction: d.jurisdiction.clone(),
        jurisdiction_bit: 0,
        model: d.model.clone(),
        endpoint,
        kind,
        price,
        tier,
        utilisation_target,
        limits,
        capabilities,
        commitment: None,
        emulation,
        oci_format: super::protocols::oci_format(protocol, &d.model, d.api_format.as_deref(), path, errors),
    }
}

fn server(raw: RawServer, secrets: &dyn SecretSource, errors: &mut Vec<String>) -> ServerSettings {
    let t = raw.timeouts.unwrap_or_default();
    let mut ms = |field: &str, v: Option<u64>, default: u64| {
        let v = v.unwrap_or(default);
        if v == 0 || v > MAX_MS {
            errors.push(format!("server.timeouts.{field}: must be > 0 and at most {MAX_MS} (365 days)"));
        }
        Duration::from_millis(v.min(MAX_MS))
    };
    let timeouts = Timeouts {
        connect: ms("connect_ms", t.connect_ms, 2_000),
        first_byte: ms("first_byte_ms", t.first_byte_ms, 30_000),
        first_token: ms("first_token_ms", t.first_token_ms, 30_000),
        stream_idle: ms("stream_idle_ms", t.stream_idle_ms, 30_000),
        request: ms("request_ms", t.request_ms, 300_000),
        body_read: ms("body_read_ms", t.body_read_ms, 30_000),
    };
    let listen = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen_addr = listen.parse::<std::net::SocketAddr>();
    if listen_addr.is_err() {
        errors.push("server.listen: must be an address such as 127.0.0.1:8080".to_owned());
    }
    if let Some(metrics) = &raw.metrics_listen {
        match metrics.parse::<std::net::SocketAddr>() {
            Err(_) => errors.push("server.metrics_listen: must be an address such as 127.0.0.1:9090".to_owned()),
            Ok(addr) if listen_addr.as_ref().is_ok_and(|l| *l == addr) => {
                errors.push("server.metrics_listen: must differ from server.listen".to_owned());
            }
            Ok(_) => {}
        }
    }
    let metrics_token = raw.metrics_token.as_deref().and_then(|r| match resolve(r, secrets) {
        Ok(token) if token.expose().is_empty() => {
            errors.push("server.metrics_token: the secret is empty".to_owned());
            None
        }
        Ok(token) => Some(token),
        Err(e) => {
            errors.push(format!("server.metrics_token: {e}"));
            None
        }
    });
    let admin_keys = raw
        .admin_keys
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, k)| {
            let hash = parse_key_hash(k);
            if hash.is_none() {
                errors.push(format!(
                    "server.admin_keys[{i}]: must be sha256:<64 hex digits> (see `switchyard hash-key`)"
                ));
            }
            hash
        })
        .collect();
    let body_limit = raw.body_limit_bytes.unwrap_or(4 << 20);
    if !(1..=MAX_BODY_LIMIT).contains(&body_limit) {
        errors.push(format!("server.body_limit_bytes: must be > 0 and at most {MAX_BODY_LIMIT} (1 GiB)"));
    }
    let body_limit = body_limit.min(MAX_BODY_LIMIT);
    // Unset, it grows with a larger body limit, so that one whole body always fits.
    let buffered = raw.buffered_body_limit_bytes.unwrap_or(DEFAULT_BUFFERED_BODY_LIMIT.max(body_limit));
    if buffered > MAX_BUFFERED_BODY_LIMIT {
        errors.push(format!("server.buffered_body_limit_bytes: must be at most {MAX_BUFFERED_BODY_LIMIT} (1 TiB)"));
    } else if buffered < body_limit {
        errors.push("server.buffered_body_limit_bytes: must be >= server.body_limit_bytes".to_owned());
    }
    let max_attempts = raw.max_attempts.unwrap_or(4);
    if !(1..=16).contains(&max_attempts) {
        errors.push("server.max_attempts: must be between 1 and 16".to_owned());
    }
    let retry_after_cap = raw.retry_after_cap_ms.unwrap_or(1_000);
    if retry_after_cap > MAX_MS {
        errors.push(format!("server.retry_after_cap_ms: must be at most {MAX_MS} (365 days)"));
    }
    ServerSettings {
        listen,
        body_limit_bytes: to_usize(body_limit),
        buffered_body_limit_bytes: to_usize(buffered.min(MAX_BUFFERED_BODY_LIMIT)),
        metrics_listen: raw.metrics_listen,
        admin_keys,
        metrics_token,
        timeouts,
        retry_after_cap: Duration::from_millis(retry_after_cap.min(MAX_MS)),
        max_attempts,
    }
}

/// Saturates on targets whose `usize` is narrower than 64 bits.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A `*_ms` setting anywhere in the config: at most [`MAX_MS`], else an error naming `path`.
/// A commitment's amount, term, elapsed time and spend: each must be a sane number. Shared with
/// the placer, which reads commitments in the same shape.
pub fn check_commitment_numbers(c: &super::raw::RawCommitment, path: &str, errors: &mut Vec<String>) {
    if !(c.amount_usd > 0.0 && c.amount_usd.is_finite()) {
        errors.push(format!("{path}.amount_usd: must be > 0"));
    }
    if !(c.term_days > 0.0 && c.term_days <= MAX_TERM_DAYS) {
        errors.push(format!("{path}.term_days: must be > 0 and at most {MAX_TERM_DAYS} (100 years)"));
    }
    let elapsed = c.elapsed_days.unwrap_or(0.0);
    if !(0.0..=c.term_days.clamp(0.0, MAX_TERM_DAYS)).contains(&elapsed) {
        errors.push(format!("{path}.elapsed_days: must be between 0 and term_days"));
    }
    let spent = c.spent_usd.unwrap_or(0.0);
    if !(spent >= 0.0 && spent.is_finite()) {
        errors.push(format!("{path}.spent_usd: must be >= 0"));
    }
}

pub(crate) fn bounded_ms(v: u64, path: &str, errors: &mut Vec<String>) -> Duration {
    if v > MAX_MS {
        errors.push(format!("{path}: must be at most {MAX_MS} (365 days)"));
    }
    Duration::from_millis(v.min(MAX_MS))
}

fn check_count(section: &str, n: usize, errors: &mut Vec<String>) {
    if n > MAX_ITEMS {
        errors.push(format!("{section}: too many (at most {MAX_ITEMS})"));
    }
}

/// A tenant's limits and budgets: counts above zero, dollar amounts finite and above zero.
fn tenant_limits(t: &RawTenant, path: &str, errors: &mut Vec<String>) -> (TenantLimits, TenantBudgets) {
    let l = t.limits.as_ref();
    let limits = TenantLimits {
        rpm: l.and_then(|l| l.rpm),
        tpm: l.and_then(|l| l.tpm),
        concurrency: l.and_then(|l| l.concurrency),
    };
    let zero = [
        ("rpm", limits.rpm == Some(0)),
        ("tpm", limits.tpm == Some(0)),
        ("concurrency", limits.concurrency == Some(0)),
    ];
    for (name, _) in zero.iter().filter(|(_, z)| *z) {
        errors.push(format!("{path}.limits.{name}: must be > 0 (leave it out for no limit)"));
    }
    let b = t.budgets.as_ref();
    let budgets = TenantBudgets { daily_usd: b.and_then(|b| b.daily_usd), monthly_usd: b.and_then(|b| b.monthly_usd) };
    for (name, value) in [("daily_usd", budgets.daily_usd), ("monthly_usd", budgets.monthly_usd)] {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0 && v <= 1e12)
        {
            errors.push(format!("{path}.budgets.{name}: must be a dollar amount above 0 (got {v})"));
        }
    }
    (limits, budgets)
}

fn routing(raw: RawRouting, errors: &mut Vec<String>) -> RoutingSettings {
    let o = raw.outlier.unwrap_or_default();
    let outlier = OutlierSettings {
        consecutive_failures: o.consecutive_failures.unwrap_or(3),
        base_ejection: bounded_ms(o.base_ejection_ms.unwrap_or(1_000), "routing.outlier.base_ejection_ms", errors),
        max_ejection: bounded_ms(o.max_ejection_ms.unwrap_or(10_000), "routing.outlier.max_ejection_ms", errors),
        max_ejected_share: o.max_ejected_share.unwrap_or(0.5),
    };
    if outlier.consecutive_failures == 0 {
        errors.push("routing.outlier.consecutive_failures: must be > 0".to_owned());
    }
    if outlier.max_ejection < outlier.base_ejection {
        errors.push("routing.outlier.max_ejection_ms: must be >= base_ejection_ms".to_owned());
    }
    if !(0.0..=1.0).contains(&outlier.max_ejected_share) {
        errors.push("routing.outlier.max_ejected_share: must be between 0 and 1".to_owned());
    }
    let b = raw.retry_budget.unwrap_or_default();
    let retry_budget = RetryBudgetSettings {
        ratio: b.ratio.unwrap_or(0.2),
        min_per_second: b.min_per_second.unwrap_or(5.0),
        window: bounded_ms(b.window_ms.unwrap_or(10_000), "routing.retry_budget.window_ms", errors),
    };
    if !(0.0..=10.0).contains(&retry_budget.ratio) {
        errors.push("routing.retry_budget.ratio: must be between 0 and 10".to_owned());
    }
    if !(0.0..=1e6).contains(&retry_budget.min_per_second) {
        errors.push("routing.retry_budget.min_per_second: must be between 0 and 1000000".to_owned());
    }
    if retry_budget.window < Duration::from_millis(100) {
        errors.push("routing.retry_budget.window_ms: must be >= 100".to_owned());
    }
    let near_tie = raw.near_tie.unwrap_or(0.05);
    if !(0.0..=1.0).contains(&near_tie) {
        errors.push("routing.near_tie: must be between 0 and 1".to_owned());
    }
    let fair_share_above = raw.fair_share_above.unwrap_or(0.75);
    if !(fair_share_above > 0.0 && fair_share_above <= 1.0) {
        errors.push("routing.fair_share_above: must be above 0 and at most 1".to_owned());
    }
    let default_output_tokens = raw.default_output_tokens.unwrap_or(256);
    RoutingSettings { outlier, retry_budget, near_tie, default_output_tokens, fair_share_above }
}

/// A name as configs take it (aliases, deployments, tenants; the placer's pools and jobs too).
pub fn check_name(name: &str, path: &str, errors: &mut Vec<String>) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    if !ok {
        errors.push(format!("{path}: must be 1-128 characters of letters, digits, - _ . / :"));
    }
}

/// A jurisdiction code: lower case, short (`us`, `eu`, `jp`).
pub fn check_jurisdiction(j: &str, path: &str, errors: &mut Vec<String>) {
    let ok = !j.is_empty() && j.len() <= 16 && j.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    if !ok {
        errors.push(format!("{path}: must be a lower-case code such as us, eu, jp"));
    }
}

pub fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `sha256:<hex>` for a key, the form config files hold.
pub fn key_hash_text(key: &str) -> String {
    let mut s = String::from("sha256:");
    for b in hash_key(key) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
