"""The PostgreSQL schema `lineside central` writes (docs/central.md), migrated on start.

Migrations run in order inside one transaction, under an advisory lock so that consumers
starting together migrate once; the version is kept in lineside_schema. A migration is
never edited once released: add a new one at the end. Quantities and money are NUMERIC,
exact as the decimal strings they arrive as.
"""

from __future__ import annotations

from typing import Any

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE lineside_transactions (
        id          text PRIMARY KEY,
        site        text NOT NULL,
        gateway     text NOT NULL,
        seq         bigint NOT NULL,
        ts          timestamptz NOT NULL,
        kind        text NOT NULL,
        item        text NOT NULL,
        location    text NOT NULL,
        lot         text,
        qty         numeric NOT NULL,
        uom         text NOT NULL,
        "order"     text,
        work_center text,
        cost        numeric NOT NULL,
        cause       text,
        landed_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX lineside_transactions_seq ON lineside_transactions (site, gateway, seq);
    CREATE TABLE lineside_messages (
        site         text NOT NULL,
        gateway      text NOT NULL,
        seq          bigint NOT NULL,
        state        text NOT NULL CHECK (state IN ('landed', 'rejected', 'not_held')),
        transactions integer NOT NULL,
        digest       bytea,
        replayed     boolean NOT NULL DEFAULT false,
        landed_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, gateway, seq)
    );
    CREATE TABLE lineside_gateways (
        site           text NOT NULL,
        gateway        text NOT NULL,
        contiguous_seq bigint,
        announced_seq  bigint NOT NULL DEFAULT 0,
        announced_at   timestamptz,
        probe          boolean NOT NULL DEFAULT false,
        online         boolean,
        version        text,
        status_at      timestamptz,
        first_seen     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, gateway)
    );
    CREATE TABLE lineside_replays (
        request_id   text PRIMARY KEY,
        site         text NOT NULL,
        gateway      text NOT NULL,
        from_seq     bigint NOT NULL,
        to_seq       bigint,
        requested_at timestamptz NOT NULL DEFAULT now(),
        requested_by text NOT NULL,
        answered_at  timestamptz,
        reply        jsonb
    );
    CREATE INDEX lineside_replays_newest ON lineside_replays (site, gateway, requested_at DESC);
    CREATE TABLE lineside_rejected (
        id          bigserial PRIMARY KEY,
        topic       text NOT NULL,
        payload     bytea NOT NULL,
        reason      text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    );
    """,
)
# Any 64-bit numbers: the keys of lineside's advisory locks.
MIGRATE_LOCK = 0x6C696E65_00000001
SCAN_LOCK = 0x6C696E65_00000002


def migrate(conn: Any) -> int:
    """Bring the schema up to date (one transaction); returns the version now."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS lineside_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM lineside_schema").fetchone()
        version = int(row[0] or 0)
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database's lineside schema is version {version}, newer than this"
                f" lineside ({len(MIGRATIONS)}): upgrade lineside"
            )
        for index in range(version, len(MIGRATIONS)):
            conn.execute(MIGRATIONS[index])
        if version < len(MIGRATIONS):
            conn.execute("DELETE FROM lineside_schema")
            conn.execute("INSERT INTO lineside_schema VALUES (%s)", (len(MIGRATIONS),))
    return len(MIGRATIONS)
