//! Job state in SQLite: jobs, their attempts, and the blocks in force, so that a restarted
//! `switchyard` loses no job. Runtime queries only (no build-time database); the ledger will
//! share this layer for SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use switchyard_core::Time;
use switchyard_placer::block::{Block, Blocks, FailureClass, Scope};
use switchyard_placer::catalog::PoolKey;
use switchyard_placer::lifecycle::Status;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("job store: {0}")]
    Corrupt(String),
}

pub struct Store {
    pool: SqlitePool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    /// The job spec as submitted (YAML).
    pub spec: String,
    pub status: Status,
    pub detail: String,
    pub created: Time,
    pub updated: Time,
    pub replacements: u32,
    /// When its engine was first found unreachable, while that lasts.
    pub unreachable_since: Option<Time>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRow {
    pub job_id: String,
    pub n: u32,
    pub offering: String,
    pub pool: PoolKey,
    pub engine: String,
    pub engine_id: String,
    pub gpus: u32,
    pub instances: u32,
    pub usd_per_hour: f64,
    pub commitment: Option<String>,
    pub prepaid: bool,
    pub resumed: bool,
    pub started: Time,
    pub ended: Option<Time>,
    pub outcome: Option<String>,
}

impl AttemptRow {
    /// Cash spent by this attempt up to `now` (or its end).
    pub fn spend(&self, now: Time) -> f64 {
        let end = self.ended.unwrap_or(now);
        self.usd_per_hour * f64::from(self.instances) * end.saturating_since(self.started).as_secs_f64() / 3_600.0
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
        status TEXT NOT NULL, detail TEXT NOT NULL, created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL,
        replacements INTEGER NOT NULL, unreachable_since_us INTEGER)",
    "CREATE TABLE IF NOT EXISTS attempts (job_id TEXT NOT NULL, n INTEGER NOT NULL, offering TEXT NOT NULL,
        pool TEXT NOT NULL, engine TEXT NOT NULL, engine_id TEXT NOT NULL, gpus INTEGER NOT NULL, instances INTEGER NOT NULL,
        usd_per_hour REAL NOT NULL, commitment TEXT, prepaid INTEGER NOT NULL, resumed INTEGER NOT NULL,
        started_us INTEGER NOT NULL, ended_us INTEGER, outcome TEXT, PRIMARY KEY (job_id, n))",
    "CREATE TABLE IF NOT EXISTS blocks (scope TEXT PRIMARY KEY, class TEXT NOT NULL, detail TEXT NOT NULL,
        since_us INTEGER NOT NULL, until_us INTEGER NOT NULL)",
];

fn t(v: i64) -> Time {
    Time(u64::try_from(v).unwrap_or(0))
}

fn i(v: Time) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

fn pool_text(p: &PoolKey) -> String {
    p.to_string()
}

fn pool_key(text: &str) -> Result<PoolKey, StoreError> {
    let mut parts = text.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(r), Some(a)) => Ok(PoolKey { cloud: c.into(), region: r.into(), accelerator: a.into() }),
        _ => Err(StoreError::Corrupt(format!("bad pool {text:?}"))),
    }
}

fn scope_text(s: &Scope) -> String {
    match s {
        Scope::Offering(id) => format!("offering:{id}"),
        Scope::Pool(p) => format!("pool:{p}"),
        Scope::Region { cloud, region } => format!("region:{cloud}/{region}"),
        Scope::Cloud(c) => format!("cloud:{c}"),
    }
}

fn scope_of(text: &str) -> Result<Scope, StoreError> {
    let bad = || StoreError::Corrupt(format!("bad scope {text:?}"));
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    Ok(match kind {
        "offering" => Scope::Offering(rest.to_owned()),
        "pool" => Scope::Pool(pool_key(rest)?),
        "region" => {
            let (cloud, region) = rest.split_once('/').ok_or_else(bad)?;
            Scope::Region { cloud: cloud.into(), region: region.into() }
        }
        "cloud" => Scope::Cloud(rest.to_owned()),
        _ => return Err(bad()),
    })
}

const CLASSES: [FailureClass; 10] = [
    FailureClass::NoCapacity,
    FailureClass::Quota,
    FailureClass::Auth,
    FailureClass::Unreachable,
    FailureClass::ZoneOutage,
    FailureClass::RegionOutage,
    FailureClass::CloudOutage,
    FailureClass::Preempted,
    FailureClass::ClusterLost,
    FailureClass::InvalidJob,
];

fn job_row(r: &SqliteRow) -> Result<JobRow, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        spec: r.try_get("spec")?,
        status: Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("bad status {status:?}")))?,
        detail: r.try_get("detail")?,
        created: t(r.try_get("created_us")?),
        updated: t(r.try_get("updated_us")?),
        replacements: u32::try_from(r.try_get::<i64, _>("replacements")?).unwrap_or(0),
        unreachable_since: r.try_get::<Option<i64>, _>("unreachable_since_us")?.map(t),
    })
}

fn attempt_row(r: &SqliteRow) -> Result<AttemptRow, StoreError> {
    let u = |v: i64| u32::try_from(v).unwrap_or(0);
    Ok(AttemptRow {
        job_id: r.try_get("job_id")?,
        n: u(r.try_get("n")?),
        offering: r.try_get("offering")?,
        pool: pool_key(&r.try_get::<String, _>("pool")?)?,
        engine: r.try_get("engine")?,
        engine_id: r.try_get("engine_id")?,
        gpus: u(r.try_get("gpus")?),
        instances: u(r.try_get("instances")?),
        usd_per_hour: r.try_get("usd_per_hour")?,
        commitment: r.try_get("commitment")?,
        prepaid: r.try_get::<i64, _>("prepaid")? != 0,
        resumed: r.try_get::<i64, _>("resumed")? != 0,
        started: t(r.try_get("started_us")?),
        ended: r.try_get::<Option<i64>, _>("ended_us")?.map(t),
        outcome: r.try_get("outcome")?,
    })
}

impl Store {
    /// Opens (creating when missing) the SQLite file at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// Records a new job, queued; its id is its name and a sequence number (`train-3`).
    pub async fn insert_job(&self, name: &str, spec: &str, now: Time) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM jobs")
            .fetch_one(&mut *tx)
            .await?
            .try_get("next")?;
        let id = format!("{name}-{seq}");
        sqlx::query("INSERT INTO jobs VALUES (?, ?, ?, ?, 'queued', '', ?, ?, 0, NULL)")
            .bind(&id)
            .bind(seq)
            .bind(name)
            .bind(spec)
            .bind(i(now))
            .bind(i(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM jobs ORDER BY seq").fetch_all(&self.pool).await?;
        rows.iter().map(job_row).collect()
    }

    pub async fn set_status(&self, id: &str, status: Status, detail: &str, now: Time) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET status = ?, detail = ?, updated_us = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(detail)
            .bind(i(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_unreachable(&self, id: &str, since: Option<Time>) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET unreachable_since_us = ? WHERE id = ?")
            .bind(since.map(i))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_replacement(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET replacements = replacements + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_attempt(&self, a: &AttemptRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&a.job_id)
            .bind(i64::from(a.n))
            .bind(&a.offering)
            .bind(pool_text(&a.pool))
            .bind(&a.engine)
            .bind(&a.engine_id)
            .bind(i64::from(a.gpus))
            .bind(i64::from(a.instances))
            .bind(a.usd_per_hour)
            .bind(&a.commitment)
            .bind(i64::from(a.prepaid))
            .bind(i64::from(a.resumed))
            .bind(i(a.started))
            .bind(a.ended.map(i))
            .bind(&a.outcome)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_attempt(&self, job_id: &str, n: u32, ended: Time, outcome: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE attempts SET ended_us = ?, outcome = ? WHERE job_id = ? AND n = ? AND ended_us IS NULL")
            .bind(i(ended))
            .bind(outcome)
            .bind(job_id)
            .bind(i64::from(n))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A job's attempts, first first.
    pub async fn attempts(&self, job_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM attempts WHERE job_id = ? ORDER BY n")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(attempt_row).collect()
    }

    /// Attempts not yet ended, across jobs.
    pub async fn open_attempts(&self) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM attempts WHERE ended_us IS NULL ORDER BY job_id, n")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(attempt_row).collect()
    }

    /// Spend per commitment since `since`, up to `now`.
    pub async fn commitment_spend(&self, since: Time, now: Time) -> Result<BTreeMap<String, f64>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM attempts WHERE commitment IS NOT NULL AND (ended_us IS NULL OR ended_us > ?)")
                .bind(i(since))
                .fetch_all(&self.pool)
                .await?;
        let mut spend = BTreeMap::new();
        for row in &rows {
            let mut a = attempt_row(row)?;
            a.started = a.started.max(since);
            if let Some(c) = a.commitment.clone() {
                *spend.entry(c).or_insert(0.0) += a.spend(now);
            }
        }
        Ok(spend)
    }

    pub async fn blocks(&self, now: Time) -> Result<Blocks, StoreError> {
        let rows = sqlx::query("SELECT * FROM blocks WHERE until_us > ? ORDER BY since_us")
            .bind(i(now))
            .fetch_all(&self.pool)
            .await?;
        let mut list = Vec::new();
        for r in &rows {
            let class: String = r.try_get("class")?;
            list.push(Block {
                scope: scope_of(&r.try_get::<String, _>("scope")?)?,
                class: CLASSES
                    .into_iter()
                    .find(|c| c.as_str() == class)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad class {class:?}")))?,
                detail: r.try_get("detail")?,
                since: t(r.try_get("since_us")?),
                until: t(r.try_get("until_us")?),
            });
        }
        Ok(Blocks::new(list))
    }

    pub async fn save_block(&self, b: &Block) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?)")
            .bind(scope_text(&b.scope))
            .bind(b.class.as_str())
            .bind(&b.detail)
            .bind(i(b.since))
            .bind(i(b.until))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
