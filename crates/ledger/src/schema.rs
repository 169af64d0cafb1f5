//! The ledger's schema, as ordered migrations per backend, and the statements that differ.
//!
//! Version `n` of the schema is the first `n` entries of [`SQLITE`] (or [`POSTGRES`]); the
//! version a database is at is the highest row of its `schema_version` table. A change to the
//! schema is a new entry at the end of both lists, never an edit of an old one. The two lists
//! differ only in types; every query is written once per backend, differing only in its
//! placeholders (`?` and `$1`).

/// The table that says which migrations a database has had; created before any migration runs.
pub(crate) const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";

/// SQLite: integers are `INTEGER` (64-bit), booleans 0/1, floats `REAL`.
pub(crate) const SQLITE: &[&[&str]] = &[
    // 1: requests and keys.
    &[
        "CREATE TABLE requests (request_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, tenant TEXT NOT NULL,
            key_id TEXT NOT NULL, alias TEXT NOT NULL, deployment TEXT, cloud TEXT, region TEXT, jurisdiction TEXT,
            protocol TEXT NOT NULL, stream INTEGER NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL,
            input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL, latency_ms INTEGER NOT NULL, ttft_ms INTEGER, attempts TEXT NOT NULL)",
        "CREATE INDEX requests_at ON requests (at_ms)",
        "CREATE TABLE keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT, created_ms INTEGER NOT NULL,
            expires_ms INTEGER, revoked_ms INTEGER, hash TEXT NOT NULL UNIQUE)",
    ],
    // 2: a managed key's own settings (see `KEY_SETTINGS`).
    &[KEY_SETTINGS],
];

/// PostgreSQL: integers are `BIGINT`, booleans `BOOLEAN`, floats `DOUBLE PRECISION`.
pub(crate) const POSTGRES: &[&[&str]] = &[
    // 1: requests and keys.
    &[
        "CREATE TABLE requests (request_id TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, tenant TEXT NOT NULL,
            key_id TEXT NOT NULL, alias TEXT NOT NULL, deployment TEXT, cloud TEXT, region TEXT, jurisdiction TEXT,
            protocol TEXT NOT NULL, stream BOOLEAN NOT NULL, status BIGINT NOT NULL, outcome TEXT NOT NULL,
            input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL, latency_ms BIGINT NOT NULL, ttft_ms BIGINT, attempts TEXT NOT NULL)",
        "CREATE INDEX requests_at ON requests (at_ms)",
        "CREATE TABLE keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT, created_ms BIGINT NOT NULL,
            expires_ms BIGINT, revoked_ms BIGINT, hash TEXT NOT NULL UNIQUE)",
    ],
    // 2: a managed key's own settings (see `KEY_SETTINGS`).
    &[KEY_SETTINGS],
];

/// Migration 2, the same on both backends: a key's own settings (aliases, jurisdictions,
/// priority, limits, budgets) as one JSON object in a text column, `{}` for none, which is
/// what every key made before it reads as.
///
/// One JSON column rather than a column per setting: the settings are read and written whole,
/// with the key, and never filtered or summed in SQL; each is optional; the set will grow (a
/// workload class, say) without a migration per setting, and the text is the same on SQLite and
/// PostgreSQL (no type per backend to keep in step). The cost is that the database does not
/// check them: the core's `KeySettings` does, when a key is made and whenever a replica loads
/// it, and a replica that cannot read a key's settings does not load the key (it fails closed
/// rather than giving the key its tenant's whole reach). A request record's `attempts` is kept
/// the same way.
const KEY_SETTINGS: &str = "ALTER TABLE keys ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'";

/// One statement in both dialects.
#[derive(Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// Serialises concurrent migrations of one PostgreSQL database (replicas starting together).
pub(crate) const PG_MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(5395428418161411397)";

pub(crate) const CURRENT_VERSION: Sql = Sql {
    sqlite: "SELECT COALESCE(MAX(version), 0) AS v FROM schema_version",
    postgres: "SELECT COALESCE(MAX(version), 0) AS v FROM schema_version",
};

pub(crate) const RECORD_VERSION: Sql = Sql {
    sqlite: "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)",
    postgres: "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
};

/// The head of SQLite's multi-row insert; the rows and the conflict clause follow.
pub(crate) const INSERT_REQUESTS_SQLITE_HEAD: &str = "INSERT INTO requests (request_id, at_ms, tenant, key_id, alias,
    deployment, cloud, region, jurisdiction, protocol, stream, status, outcome, input_tokens, output_tokens,
    cached_tokens, cost_usd, latency_ms, ttft_ms, attempts)";

/// PostgreSQL takes a batch as one array per column, so a batch is one statement.
pub(crate) const INSERT_REQUESTS_POSTGRES: &str = "INSERT INTO requests (request_id, at_ms, tenant, key_id, alias,
    deployment, cloud, region, jurisdiction, protocol, stream, status, outcome, input_tokens, output_tokens,
    cached_tokens, cost_usd, latency_ms, ttft_ms, attempts)
    SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
        $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::BOOLEAN[], $12::BIGINT[], $13::TEXT[], $14::BIGINT[],
        $15::BIGINT[], $16::BIGINT[], $17::DOUBLE PRECISION[], $18::BIGINT[], $19::BIGINT[], $20::TEXT[])
    ON CONFLICT (request_id) DO NOTHING";

pub(crate) const COUNT_REQUESTS: Sql =
    Sql { sqlite: "SELECT COUNT(*) AS n FROM requests", postgres: "SELECT COUNT(*) AS n FROM requests" };

pub(crate) const GET_REQUEST: Sql = Sql {
    sqlite: "SELECT * FROM requests WHERE request_id = ?",
    postgres: "SELECT * FROM requests WHERE request_id = $1",
};

/// The latest requests, newest first.
pub(crate) const RECENT: Sql = Sql {
    sqlite: "SELECT * FROM requests ORDER BY at_ms DESC, request_id LIMIT ?",
    postgres: "SELECT * FROM requests ORDER BY at_ms DESC, request_id LIMIT $1",
};

/// Spend per group; `{col}` is a column name chosen by a closed enum, never caller text.
pub(crate) const SPEND: Sql = Sql {
    sqlite: "SELECT COALESCE({col}, '') AS k, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,
        SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd
        FROM requests WHERE at_ms >= ? AND at_ms < ? GROUP BY k ORDER BY cost_usd DESC, k",
    postgres: "SELECT COALESCE({col}, '') AS k, COUNT(*) AS requests, SUM(input_tokens)::BIGINT AS input_tokens,
        SUM(output_tokens)::BIGINT AS output_tokens, SUM(cost_usd) AS cost_usd
        FROM requests WHERE at_ms >= $1 AND at_ms < $2 GROUP BY k ORDER BY cost_usd DESC, k",
};

pub(crate) const INSERT_KEY: Sql = Sql {
    sqlite: "INSERT INTO keys (id, tenant, name, created_ms, expires_ms, revoked_ms, hash, settings)
        VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
    postgres: "INSERT INTO keys (id, tenant, name, created_ms, expires_ms, revoked_ms, hash, settings)
        VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
};

pub(crate) const LIST_KEYS: Sql = Sql {
    sqlite: "SELECT * FROM keys ORDER BY created_ms, id",
    postgres: "SELECT * FROM keys ORDER BY created_ms, id",
};

pub(crate) const ACTIVE_KEYS: Sql = Sql {
    sqlite: "SELECT * FROM keys WHERE revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?)
        ORDER BY created_ms, id",
    postgres: "SELECT * FROM keys WHERE revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $1)
        ORDER BY created_ms, id",
};

pub(crate) const REVOKE_KEY: Sql = Sql {
    sqlite: "UPDATE keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
    postgres: "UPDATE keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
};

pub(crate) const KEY_BY_ID: Sql =
    Sql { sqlite: "SELECT * FROM keys WHERE id = ?", postgres: "SELECT * FROM keys WHERE id = $1" };

/// A key's name, expiry and settings replaced if they are still what was read (and it was not
/// revoked meanwhile): a change made in between is not overwritten.
pub(crate) const UPDATE_KEY_IF: Sql = Sql {
    sqlite: "UPDATE keys SET name = ?, expires_ms = ?, settings = ? WHERE id = ? AND revoked_ms IS NULL
        AND settings = ? AND name IS ? AND expires_ms IS ?",
    postgres: "UPDATE keys SET name = $1, expires_ms = $2, settings = $3 WHERE id = $4 AND revoked_ms IS NULL
        AND settings = $5 AND name IS NOT DISTINCT FROM $6 AND expires_ms IS NOT DISTINCT FROM $7",
};

pub(crate) const KEY_EXISTS: Sql = Sql {
    sqlite: "SELECT COUNT(*) AS n FROM keys WHERE id = ?",
    postgres: "SELECT COUNT(*) AS n FROM keys WHERE id = $1",
};
