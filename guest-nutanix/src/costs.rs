//! Costs: Nutanix sends no bill, so a rate card (option `rate_card`) turns
//! each VM's allocation into daily cost lines for CloudForet's cost
//! analysis (the `cost-source` export).
//!
//! - A VM that is powered on is charged for its vCPUs and memory by the
//!   hour (24 hours a day) and, on or off, for its disks by the month
//!   (a day is `1 / days in the month` of a month).
//! - Rates: the card's defaults, overridden per cluster (`clusters`), and
//!   per category `Name:Value` (`categories`, which win over clusters; the
//!   first matching category in name order).
//! - Tasks: one per day, from the last synchronization's day (it may have
//!   been partial), or CloudForet's `start`, or today alone, through today
//!   (UTC), at most `backfill_days` days. Each task replaces its day's costs
//!   (`changed`).
//!
//! Costs are an allocation estimate: each day is charged with the VM as it
//! is at collection time (Prism keeps no allocation history).

use crate::record::{CloudService, Cost};
use crate::{Error, PROVIDER};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const MAX_BACKFILL_DAYS: i64 = 366;
const DEFAULT_BACKFILL_DAYS: i64 = 31;

/// Hourly and monthly rates, in the card's currency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub vcpu_hour: f64,
    pub memory_gib_hour: f64,
    pub disk_gib_month: f64,
}

/// Some rates of an override; the rest come from the level below.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Partial {
    vcpu_hour: Option<f64>,
    memory_gib_hour: Option<f64>,
    disk_gib_month: Option<f64>,
}

impl Partial {
    fn over(&self, base: Rates) -> Rates {
        Rates {
            vcpu_hour: self.vcpu_hour.unwrap_or(base.vcpu_hour),
            memory_gib_hour: self.memory_gib_hour.unwrap_or(base.memory_gib_hour),
            disk_gib_month: self.disk_gib_month.unwrap_or(base.disk_gib_month),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RateCard {
    pub currency: String,
    pub base: Rates,
    clusters: BTreeMap<String, Partial>,
    /// `(category name, value)`.
    categories: BTreeMap<(String, String), Partial>,
    pub backfill_days: i64,
}

fn rate(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<f64>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            _ => Err(Error::InvalidArgument(format!(
                "option {at}.{key} must be a number of at least 0"
            ))),
        },
    }
}

fn partial(v: &Value, at: &str) -> Result<Partial, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::InvalidArgument(format!("option {at} must be an object")))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["vcpu_hour", "memory_gib_hour", "disk_gib_month"].contains(&k.as_str()))
    {
        return Err(Error::InvalidArgument(format!(
            "option {at} has an unknown rate '{k}'"
        )));
    }
    Ok(Partial {
        vcpu_hour: rate(obj, "vcpu_hour", at)?,
        memory_gib_hour: rate(obj, "memory_gib_hour", at)?,
        disk_gib_month: rate(obj, "disk_gib_month", at)?,
    })
}

impl RateCard {
    /// Reads `rate_card` from the options JSON.
    pub fn parse(options: &str) -> Result<RateCard, Error> {
        let v: Value = serde_json::from_str(if options.trim().is_empty() {
            "{}"
        } else {
            options
        })
        .map_err(|e| Error::InvalidArgument(format!("options are not valid JSON: {e}")))?;
        let card = v
            .get("rate_card")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::InvalidArgument("costs need option rate_card (an object with vcpu_hour, memory_gib_hour, disk_gib_month)".into()))?;
        let known = [
            "currency",
            "vcpu_hour",
            "memory_gib_hour",
            "disk_gib_month",
            "clusters",
            "categories",
            "backfill_days",
        ];
        if let Some(k) = card.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "option rate_card has an unknown key '{k}'"
            )));
        }
        let currency = match card.get("currency") {
            None => "USD".to_string(),
            Some(Value::String(c))
                if (3..=8).contains(&c.len()) && c.chars().all(|ch| ch.is_ascii_alphabetic()) =>
            {
                c.to_ascii_uppercase()
            }
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "option rate_card.currency must be a currency code such as USD".into(),
                ));
            }
        };
        let base = Partial {
            vcpu_hour: rate(card, "vcpu_hour", "rate_card")?,
            memory_gib_hour: rate(card, "memory_gib_hour", "rate_card")?,
            disk_gib_month: rate(card, "disk_gib_month", "rate_card")?,
        }
        .over(Rates {
            vcpu_hour: 0.0,
            memory_gib_hour: 0.0,
            disk_gib_month: 0.0,
        });
        let mut clusters = BTreeMap::new();
        if let Some(c) = card.get("clusters") {
            let obj = c.as_object().ok_or_else(|| {
                Error::InvalidArgument("option rate_card.clusters must be an object".into())
            })?;
            for (name, rates) in obj {
                clusters.insert(
                    name.clone(),
                    partial(rates, &format!("rate_card.clusters.{name}"))?,
                );
            }
        }
        let mut categories = BTreeMap::new();
        if let Some(c) = card.get("categories") {
            let obj = c.as_object().ok_or_else(|| {
                Error::InvalidArgument("option rate_card.categories must be an object".into())
            })?;
            for (key, rates) in obj {
                let (name, value) = key.split_once(':').ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "option rate_card.categories key '{key}' must be 'Name:Value'"
                    ))
                })?;
                categories.insert(
                    (name.to_string(), value.to_string()),
                    partial(rates, &format!("rate_card.categories.{key}"))?,
                );
            }
        }
        let backfill_days = match card.get("backfill_days") {
            None => DEFAULT_BACKFILL_DAYS,
            Some(v) => v
                .as_i64()
                .filter(|d| (1..=MAX_BACKFILL_DAYS).contains(d))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "option rate_card.backfill_days must be 1-{MAX_BACKFILL_DAYS}"
                    ))
                })?,
        };
        Ok(RateCard {
            currency,
            base,
            clusters,
            categories,
            backfill_days,
        })
    }

    /// The rates of a VM on `cluster` with `tags` (categories), and where
    /// they came from.
    pub fn rates_for(&self, cluster: Option<&str>, tags: &[(String, String)]) -> (Rates, String) {
        let mut rates = self.base;
        let mut source = "default".to_string();
        if let Some(p) = cluster.and_then(|c| self.clusters.get(c)) {
            rates = p.over(rates);
            source = format!("cluster {}", cluster.unwrap_or_default());
        }
        let mut sorted: Vec<&(String, String)> = tags.iter().collect();
        sorted.sort();
        if let Some((key, p)) = sorted
            .into_iter()
            .find_map(|t| self.categories.get_key_value(t))
        {
            rates = p.over(rates);
            source = format!("category {}:{}", key.0, key.1);
        }
        (rates, source)
    }
}

/// `cost-source.init`'s metadata.
pub fn init(options: &str) -> Result<Value, Error> {
    let card = RateCard::parse(options)?;
    Ok(json!({
        "currency": card.currency,
        "supported_secret_types": ["MANUAL"],
        "data_source_rules": [],
        "use_account_routing": false,
        "cost_model": "allocation x rate_card",
    }))
}

/// A day, as days since 1970-01-01.
pub type Day = i64;

/// Days since the epoch of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Day {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day.
pub fn civil_from_days(z: Day) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

pub fn format_day(day: Day) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD`, `YYYY-MM` (its first day) or an RFC 3339 timestamp (its
/// date).
pub fn parse_day(s: &str, what: &str) -> Result<Day, Error> {
    let bad = || {
        Error::InvalidArgument(format!(
            "{what} {s:?} is not a date (YYYY-MM-DD, YYYY-MM or RFC 3339)"
        ))
    };
    let date = s.get(..10).filter(|_| s.len() >= 10).unwrap_or(s);
    let parts: Vec<&str> = date.split('-').collect();
    let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
    let (y, m, d) = match parts.as_slice() {
        [y, m] if y.len() == 4 && m.len() == 2 => (num(y)?, num(m)?, 1),
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (num(y)?, num(m)?, num(d)?),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) {
        return Err(bad());
    }
    Ok(days_from_civil(i64::from(y), m, d))
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    (next - days_from_civil(y, m, 1)) as u32
}

/// One cost task: its day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostTask {
    pub billed_date: String,
}

impl CostTask {
    pub fn options(&self) -> Value {
        json!({"billed_date": self.billed_date})
    }

    pub fn parse(task_options: &str) -> Result<CostTask, Error> {
        let v: Value = serde_json::from_str(task_options)
            .map_err(|e| Error::InvalidArgument(format!("task options are not valid JSON: {e}")))?;
        let date = v
            .get("billed_date")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::InvalidArgument("cost task options need billed_date (YYYY-MM-DD)".into())
            })?;
        let day = parse_day(date, "task option billed_date")?;
        Ok(CostTask {
            billed_date: format_day(day),
        })
    }
}

/// The days to charge: see the module docs.
pub fn get_tasks(
    options: &str,
    start: Option<&str>,
    last_synchronized_at: Option<&str>,
    today: Day,
) -> Result<Vec<CostTask>, Error> {
    let card = RateCard::parse(options)?;
    let from = match (
        last_synchronized_at.filter(|s| !s.is_empty()),
        start.filter(|s| !s.is_empty()),
    ) {
        (Some(last), _) => parse_day(last, "last_synchronized_at")?,
        (None, Some(start)) => parse_day(start, "start")?,
        (None, None) => today,
    };
    let from = from.max(today - (card.backfill_days - 1)).min(today);
    Ok((from..=today)
        .map(|d| CostTask {
            billed_date: format_day(d),
        })
        .collect())
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The cost lines of one VM for one day.
pub fn vm_costs(vm: &CloudService, card: &RateCard, billed_date: &str) -> Vec<Cost> {
    let Ok(day) = parse_day(billed_date, "billed_date") else {
        return Vec::new();
    };
    let (y, m, _) = civil_from_days(day);
    let month_days = f64::from(days_in_month(y, m));
    let num = |k: &str| vm.data.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let on = vm
        .data
        .get("power_state")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("ON"));
    let (vcpus, memory_gib, disk_gib) = (
        num("vcpus"),
        num("memory_mib") / 1024.0,
        num("disk_total_bytes") / GIB,
    );
    // Rates are set per cluster name (the region code is the cluster's uuid).
    let cluster = vm.data.pointer("/cluster/name").and_then(Value::as_str).or(vm.region_code.as_deref());
    let (rates, source) = card.rates_for(cluster, &vm.tags);
    let lines = [
        (
            "vCPU",
            "vCPU-Hour",
            if on { vcpus * 24.0 } else { 0.0 },
            rates.vcpu_hour,
        ),
        (
            "Memory",
            "GiB-Hour",
            if on { memory_gib * 24.0 } else { 0.0 },
            rates.memory_gib_hour,
        ),
        (
            "Disk",
            "GiB-Month",
            disk_gib / month_days,
            rates.disk_gib_month,
        ),
    ];
    lines
        .into_iter()
        .filter(|(_, _, quantity, _)| *quantity > 0.0)
        .map(|(usage_type, unit, quantity, rate)| Cost {
            cost: quantity * rate,
            usage_quantity: quantity,
            usage_unit: unit.to_string(),
            provider: PROVIDER.to_string(),
            region_code: vm.region_code.clone(),
            product: "Virtual Machine".to_string(),
            usage_type: usage_type.to_string(),
            resource: vm.resource_id.clone(),
            tags: vm.tags.clone(),
            additional_info: json!({"VM Name": vm.name, "Cluster": cluster.unwrap_or(""), "Rate": source}),
            data: json!({
                "vm_name": vm.name,
                "power_state": vm.data.get("power_state").cloned().unwrap_or(Value::Null),
                "vcpus": vcpus,
                "memory_gib": memory_gib,
                "disk_gib": disk_gib,
                "rate": rate,
                "currency": card.currency,
            }),
            billed_date: billed_date.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"{"rate_card": {"currency": "eur", "vcpu_hour": 0.02, "memory_gib_hour": 0.005, "disk_gib_month": 0.1,
        "clusters": {"cluster-b": {"vcpu_hour": 0.03}},
        "categories": {"Environment:Production": {"vcpu_hour": 0.05, "memory_gib_hour": 0.01}}}}"#;

    fn vm(power: &str, cluster: &str, tags: &[(&str, &str)]) -> CloudService {
        CloudService {
            name: "vm-1".into(),
            provider: "nutanix".into(),
            cloud_service_group: "Compute".into(),
            cloud_service_type: "VirtualMachine".into(),
            account: None,
            region_code: Some(cluster.into()),
            instance_type: None,
            instance_size: None,
            ip_addresses: vec![],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resource_id: "uuid-1".into(),
            external_link: None,
            launched_at: None,
            data: json!({"power_state": power, "vcpus": 4, "memory_mib": 8192, "disk_total_bytes": 100.0 * GIB}),
            metadata: json!({}),
        }
    }

    fn err(r: Result<impl std::fmt::Debug, Error>) -> String {
        match r.unwrap_err() {
            Error::InvalidArgument(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_day(days_from_civil(2026, 11, 23)), "2026-11-23");
        assert_eq!(format_day(days_from_civil(2024, 2, 29) + 1), "2024-03-01");
        assert_eq!(format_day(days_from_civil(2000, 12, 31) + 1), "2001-01-01");
        assert_eq!(
            (
                days_in_month(2024, 2),
                days_in_month(2026, 2),
                days_in_month(2026, 12)
            ),
            (29, 28, 31)
        );
        assert_eq!(
            parse_day("2026-11", "x").unwrap(),
            days_from_civil(2026, 11, 1)
        );
        assert_eq!(
            parse_day("2026-11-20T10:00:00Z", "x").unwrap(),
            days_from_civil(2026, 11, 20)
        );
        assert!(
            err(parse_day("2026-02-30", "start")).contains("start \"2026-02-30\" is not a date")
        );
        assert!(parse_day("yesterday", "x").is_err());
        assert!(parse_day("", "x").is_err());
    }

    #[test]
    fn rates_default_cluster_then_category() {
        let card = RateCard::parse(CARD).unwrap();
        assert_eq!(card.currency, "EUR");
        assert_eq!(
            card.rates_for(Some("cluster-a"), &[]),
            (card.base, "default".into())
        );
        let (r, s) = card.rates_for(Some("cluster-b"), &[]);
        assert_eq!(
            (r.vcpu_hour, r.memory_gib_hour, s.as_str()),
            (0.03, 0.005, "cluster cluster-b")
        );
        let tags = vec![("Environment".to_string(), "Production".to_string())];
        let (r, s) = card.rates_for(Some("cluster-b"), &tags);
        assert_eq!(
            (r.vcpu_hour, r.memory_gib_hour, r.disk_gib_month),
            (0.05, 0.01, 0.1)
        );
        assert_eq!(s, "category Environment:Production");
    }

    #[test]
    fn bad_rate_cards_name_the_field() {
        assert!(err(RateCard::parse("{}")).contains("costs need option rate_card"));
        assert!(
            err(RateCard::parse(r#"{"rate_card": {"vcpu_hour": -1}}"#))
                .contains("rate_card.vcpu_hour must be a number of at least 0")
        );
        assert!(err(RateCard::parse(r#"{"rate_card": {"cpu": 1}}"#)).contains("unknown key 'cpu'"));
        assert!(
            err(RateCard::parse(
                r#"{"rate_card": {"categories": {"Production": {}}}}"#
            ))
            .contains("'Name:Value'")
        );
        assert!(
            err(RateCard::parse(
                r#"{"rate_card": {"clusters": {"c": {"vcpu": 1}}}}"#
            ))
            .contains("rate_card.clusters.c has an unknown rate 'vcpu'")
        );
        assert!(
            err(RateCard::parse(r#"{"rate_card": {"backfill_days": 0}}"#))
                .contains("backfill_days must be 1-366")
        );
    }

    #[test]
    fn a_running_vm_pays_cpu_memory_and_disk_a_stopped_one_disk_only() {
        let card = RateCard::parse(CARD).unwrap();
        let on = vm_costs(&vm("ON", "cluster-a", &[]), &card, "2026-11-23");
        let got: Vec<(&str, f64, f64)> = on
            .iter()
            .map(|c| (c.usage_type.as_str(), c.usage_quantity, c.cost))
            .collect();
        let disk_q = 100.0 / 30.0;
        assert_eq!(got[0], ("vCPU", 96.0, 96.0 * 0.02));
        assert_eq!(got[1], ("Memory", 192.0, 192.0 * 0.005));
        assert_eq!(got[2].0, "Disk");
        assert!((got[2].1 - disk_q).abs() < 1e-9 && (got[2].2 - disk_q * 0.1).abs() < 1e-9);
        assert!(on.iter().all(|c| c.resource == "uuid-1"
            && c.billed_date == "2026-11-23"
            && c.region_code.as_deref() == Some("cluster-a")));
        assert_eq!(on[0].additional_info["Rate"], "default");
        assert_eq!(on[0].data["currency"], "EUR");
        let off = vm_costs(&vm("OFF", "cluster-a", &[]), &card, "2026-11-23");
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].usage_type, "Disk");
        let prod = vm_costs(
            &vm("ON", "cluster-b", &[("Environment", "Production")]),
            &card,
            "2026-02-01",
        );
        assert_eq!(prod[0].cost, 96.0 * 0.05);
        assert!(
            (prod[2].usage_quantity - 100.0 / 28.0).abs() < 1e-9,
            "February has 28 days in 2026"
        );
    }

    #[test]
    fn tasks_cover_the_days_since_the_last_sync_within_the_backfill() {
        let today = days_from_civil(2026, 11, 23);
        let days = |v: Vec<CostTask>| v.into_iter().map(|t| t.billed_date).collect::<Vec<_>>();
        assert_eq!(
            days(get_tasks(CARD, None, None, today).unwrap()),
            ["2026-11-23"]
        );
        assert_eq!(
            days(get_tasks(CARD, None, Some("2026-11-21T23:00:00Z"), today).unwrap()),
            ["2026-11-21", "2026-11-22", "2026-11-23"]
        );
        assert_eq!(
            days(get_tasks(CARD, Some("2026-11-22"), None, today).unwrap()),
            ["2026-11-22", "2026-11-23"]
        );
        // The last sync wins over start; the backfill caps both.
        assert_eq!(
            get_tasks(CARD, Some("2026-01"), Some("2026-11-23T01:00:00Z"), today)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            get_tasks(CARD, Some("2026-01"), None, today).unwrap().len(),
            31
        );
        assert_eq!(
            days(get_tasks(CARD, Some("2027-01-01"), None, today).unwrap()),
            ["2026-11-23"],
            "a future start is today"
        );
        assert_eq!(
            CostTask::parse(r#"{"billed_date": "2026-11-05"}"#)
                .unwrap()
                .billed_date,
            "2026-11-05"
        );
        assert!(err(CostTask::parse(r#"{}"#)).contains("billed_date"));
    }
}
