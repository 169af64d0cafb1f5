//! A key's settings: read with the path of what is wrong, checked against its tenant, and
//! narrowing it, never widening.

use super::*;
use crate::config::NoSecrets;

const CONFIG: &str = r#"
clouds:
  - { name: c, protocol: openai }
deployments:
  - { name: us1, cloud: c, region: r1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1",
      price: { input_per_mtok: 1, output_per_mtok: 2 } }
  - { name: eu1, cloud: c, region: r2, jurisdiction: eu, model: m, endpoint: "http://127.0.0.1:1/v1",
      price: { input_per_mtok: 1, output_per_mtok: 2 } }
  - { name: jp1, cloud: c, region: r3, jurisdiction: jp, model: m, endpoint: "http://127.0.0.1:1/v1",
      price: { input_per_mtok: 1, output_per_mtok: 2 } }
aliases:
  - { name: chat, deployments: [us1, eu1, jp1] }
  - { name: code, deployments: [us1, eu1] }
  - { name: secret, deployments: [jp1] }
tenants:
  - name: acme
    keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"]
    jurisdictions: [us, eu]
    aliases: [chat, code]
    workload: batch
"#;

fn config() -> Config {
    Config::from_yaml(CONFIG, &NoSecrets).expect("config")
}

#[test]
fn settings_read_from_json_name_what_is_wrong() {
    let s =
        KeySettings::from_json(r#"{"aliases": ["chat"], "priority": "low", "tpm": 1000, "daily_usd": 2.5}"#).unwrap();
    assert_eq!(s.aliases.as_deref(), Some(&["chat".to_owned()][..]));
    assert_eq!((s.priority, s.tpm, s.daily_usd), (Some(Priority::Low), Some(1000), Some(2.5)));
    assert_eq!(KeySettings::from_json(&s.to_json()).unwrap(), s, "round trip");
    assert_eq!(KeySettings::default().to_json(), "{}");
    assert!(KeySettings::from_json("{}").unwrap().is_empty());

    let err = |text: &str| KeySettings::from_json(text).unwrap_err();
    assert!(err(r#"{"rpm": -1}"#).starts_with("rpm: invalid value: integer `-1`"), "{}", err(r#"{"rpm": -1}"#));
    assert!(err(r#"{"priority": "urgent"}"#).starts_with("priority: unknown variant `urgent`"));
    assert!(
        err(r#"{"aliases": ["a", 3]}"#).starts_with("aliases[1]: invalid type"),
        "{}",
        err(r#"{"aliases": ["a", 3]}"#)
    );
    let unknown = err(r#"{"budget": 5}"#);
    assert!(unknown.contains("unknown field `budget`") && unknown.contains("daily_usd"), "{unknown}");
    assert_eq!(err("[1]"), "the settings must be a JSON object, not [1]");
    assert!(err("{} x").contains("trailing characters"));
}

#[test]
fn every_error_comes_at_once_with_its_field() {
    let config = config();
    let tenant = &config.tenants[0];
    let s = KeySettings {
        aliases: Some(vec!["chat".into(), "secret".into(), "nope".into()]),
        jurisdictions: Some(vec!["eu".into(), "jp".into()]),
        workload: None,
        priority: Some(Priority::High),
        rpm: Some(0),
        tpm: Some(10),
        concurrency: Some(0),
        daily_usd: Some(-1.0),
        monthly_usd: Some(f64::INFINITY),
    };
    let errors: Vec<String> = s.check_for(&config, tenant).iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "rpm: must be > 0 (leave it out for no limit)",
            "concurrency: must be > 0 (leave it out for no limit)",
            "daily_usd: must be a dollar amount above 0 (got -1)",
            "monthly_usd: must be a dollar amount above 0 (got inf)",
            "aliases[1]: \"secret\" is not an alias tenant acme may use (chat, code)",
            "aliases[2]: \"nope\" is not an alias tenant acme may use (chat, code)",
            "jurisdictions[1]: \"jp\" is not one of tenant acme's jurisdictions (us, eu)",
            "priority: high is above tenant acme's priority (normal)",
        ]
    );
    let e = &s.check_for(&config, tenant)[4];
    assert_eq!((e.field, e.index, e.flag_path()), (KeyField::Aliases, Some(1), "--aliases (entry 2)".to_owned()));
    let empty = KeySettings { aliases: Some(vec![]), jurisdictions: Some(vec!["EU".into()]), ..Default::default() };
    let errors: Vec<String> = empty.check().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "aliases: an empty list allows nothing; leave it out for the tenant's aliases",
            "jurisdictions[0]: must be a lower-case code such as us, eu, jp",
        ]
    );
    let fine = KeySettings { aliases: Some(vec!["code".into()]), priority: Some(Priority::Low), ..Default::default() };
    assert!(fine.check_for(&config, tenant).is_empty());
    for field in KeyField::ALL {
        assert_eq!(KeyField::of_name(field.name()), Some(field));
    }
}

#[test]
fn a_key_narrows_its_tenant_and_never_widens_it() {
    let config = config();
    let tenant = &config.tenants[0];
    let s = KeySettings {
        aliases: Some(vec!["code".into()]),
        jurisdictions: Some(vec!["eu".into()]),
        priority: Some(Priority::Low),
        ..Default::default()
    };
    let (view, errors) = s.narrow(&config, tenant);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!((view.id, view.name.as_str()), (tenant.id, "acme"));
    let code = config.alias("code").unwrap().id;
    let chat = config.alias("chat").unwrap().id;
    assert!(config.tenant_may_use(&view, code) && !config.tenant_may_use(&view, chat));
    assert_eq!(view.jurisdictions, ["eu"]);
    let eu_bit = config.deployments[1].jurisdiction_bit;
    assert_eq!(view.jurisdiction_mask, eu_bit);
    assert_eq!(view.priority, Priority::Low);

    // Made when the tenant had more (or by hand): what it does not have is left out, and said.
    let wider = KeySettings {
        aliases: Some(vec!["secret".into()]),
        jurisdictions: Some(vec!["jp".into()]),
        priority: Some(Priority::High),
        ..Default::default()
    };
    let (view, errors) = wider.narrow(&config, tenant);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(view.aliases, Some(vec![]), "an alias the tenant may not use gives nothing");
    assert_eq!((view.jurisdiction_mask, view.jurisdictions.len()), (0, 0), "nor a jurisdiction it lacks");
    assert_eq!(view.priority, Priority::Normal, "nor a higher priority");

    // A workload sets the priority it implies, still at most the tenant's (normal here).
    let batch = KeySettings { workload: Some(crate::config::Workload::Training), ..Default::default() };
    let (view, errors) = batch.narrow(&config, tenant);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!((view.workload, view.priority), (crate::config::Workload::Training, Priority::Low));
    let interactive = KeySettings { workload: Some(crate::config::Workload::Interactive), ..Default::default() };
    assert_eq!(interactive.narrow(&config, tenant).0.priority, Priority::Normal, "never above the tenant's");
    let parsed = KeySettings::from_json(r#"{"workload": "batch"}"#).expect("reads");
    assert_eq!(parsed.workload, Some(crate::config::Workload::Batch));
    assert_eq!(parsed.summary(), "workload=batch");

    // Settings of limits only leave the tenant as it is.
    let (view, _) = KeySettings { tpm: Some(5), ..Default::default() }.narrow(&config, tenant);
    assert_eq!(
        (view.aliases, view.jurisdiction_mask, view.priority),
        (tenant.aliases.clone(), tenant.jurisdiction_mask, tenant.priority)
    );
    assert_eq!(s.summary(), "aliases=code jurisdictions=eu priority=low", "one line for a table");
}

#[test]
fn a_patch_sets_and_clears_fields_and_keeps_the_rest() {
    let settings = KeySettings::from_json(r#"{"rpm": 10, "aliases": ["chat"], "daily_usd": 5}"#).expect("settings");
    let patch = |text: &str| match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(patch)) => patch,
        other => panic!("not an object: {other:?}"),
    };
    let patched = settings.patched(patch(r#"{"rpm": 20, "aliases": null, "concurrency": 3}"#)).expect("patched");
    assert_eq!(patched.rpm, Some(20));
    assert_eq!(patched.aliases, None, "cleared: the tenant's again");
    assert_eq!((patched.concurrency, patched.daily_usd), (Some(3), Some(5.0)), "the rest kept");
    assert_eq!(settings.patched(patch("{}")).expect("nothing"), settings);
    let wrong = settings.patched(patch(r#"{"tpm": "many"}"#)).expect_err("not a number");
    assert!(wrong.starts_with("tpm"), "{wrong}");
    assert!(settings.patched(patch(r#"{"colour": "red"}"#)).is_err(), "an unknown field");
}

#[test]
fn a_change_to_settings_that_cannot_be_read_is_refused_never_taken_for_none() {
    let config = config();
    let tenant = Some((&config, &config.tenants[0]));
    let patch = |text: &str| match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(patch)) => patch,
        other => panic!("not an object: {other:?}"),
    };
    let stored = r#"{"rpm": 10, "from_a_newer_build": true}"#;
    assert!(matches!(KeySettings::changed(stored, patch("{}"), tenant), Err(KeyChangeError::Unreadable(_))));
    let changed = KeySettings::changed(r#"{"rpm": 10}"#, patch(r#"{"tpm": 100}"#), tenant).expect("changed");
    assert_eq!((changed.rpm, changed.tpm), (Some(10), Some(100)));
    assert!(matches!(KeySettings::changed("{}", patch(r#"{"rpm": "x"}"#), tenant), Err(KeyChangeError::Field(_))));
    let wrong = KeySettings::changed("{}", patch(r#"{"aliases": ["secret"]}"#), tenant);
    assert!(matches!(wrong, Err(KeyChangeError::Checks(w)) if w[0].field == KeyField::Aliases));
}
