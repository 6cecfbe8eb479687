"""Every analytical query on ClickHouse gives Postgres's answer on the same data (docs/scaling.md).

Data are planted in Postgres, copied by the real loader into the real ClickHouse engine (chDB), and
each query is run on both engines and the answers compared whole.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import sqlalchemy as sa

from eventtrack import clickhouse as ch
from eventtrack.analytics.funnels import (
    clickhouse_funnel_params,
    clickhouse_funnel_sql,
    funnel_params,
    funnel_sql,
    shape_results,
)
from eventtrack.analytics.segments import (
    clickhouse_breakdown,
    clickhouse_filters_sql,
    filters_sql,
    parse_breakdown,
    parse_filters,
)
from tests.conftest import RunningServer, settings_for

# Two weeks before today's UTC midnight: inside the retention window (the events table has partitions for it).
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=14)
END = START + timedelta(days=7)
TYPES = ("open", "view", "cart", "buy")
PLANS = ("free", "pro", "team", None)
PRICES = ("1.50", "2", "10", "-3.25", "1e3", '"12"', "true", "null", '{"a": [1, 2]}')


def planted_events(seed: int = 7) -> list[tuple]:
    """Hand-made edge cases, then 300 random users over 9 days around [START, END)."""
    t = START + timedelta(days=1)
    rows = [
        ("edge-full", "open", t, {}), ("edge-full", "view", t + timedelta(hours=1), {}),
        ("edge-full", "cart", t + timedelta(hours=2), {}), ("edge-full", "buy", t + timedelta(hours=3), {}),
        ("edge-late", "open", t, {}), ("edge-late", "view", t + timedelta(hours=25), {}),
        ("edge-tie", "open", t, {}), ("edge-tie", "view", t, {}), ("edge-tie", "view", t + timedelta(minutes=5), {}),
        ("edge-end", "open", END - timedelta(seconds=1), {}), ("edge-end", "view", END + timedelta(hours=1), {}),
        ("edge-before", "open", START - timedelta(hours=1), {}), ("edge-before", "view", START + timedelta(hours=1), {}),
        ("edge-twice", "open", t, {"plan": "pro"}), ("edge-twice", "open", t + timedelta(minutes=1), {"plan": "free"}),
        ("edge-twice", "view", t + timedelta(minutes=2), {}),
    ]  # fmt: skip
    rng = random.Random(seed)
    for user in range(300):
        props_plan = rng.choice(PLANS)
        at = START - timedelta(days=1) + timedelta(seconds=rng.randrange(9 * 86400))
        for _ in range(rng.randrange(1, 12)):
            at += timedelta(
                seconds=rng.choice((1, 30, 600, 3600, 5 * 3600, 30 * 3600)), microseconds=rng.randrange(10**6)
            )
            # As JSON text, so a number keeps the spelling the app sent (1.50 is not 1.5 to Postgres's ->>).
            props = [f'"plan": "{props_plan}"'] if props_plan else []
            if rng.random() < 0.7:
                props.append(f'"price": {rng.choice(PRICES)}')
            if rng.random() < 0.2:
                props.append(f'"nested": {{"k": "{rng.choice(("x", "y"))}"}}')
            rows.append((f"user-{user}", rng.choice(TYPES), at, "{" + ", ".join(props) + "}"))
    return rows


@pytest.fixture(scope="module")
def engines(database_url, chdb_url):
    """Postgres and ClickHouse holding the same planted events."""
    import psycopg

    target = ch.Target.parse(chdb_url)
    client = ch.connect(target)
    client.command(f"DROP DATABASE IF EXISTS {target.database} SYNC")
    client = ch.connect(target)
    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute("TRUNCATE events, clickhouse_erasures")
        with pg.cursor() as cur:
            cur.executemany(
                """INSERT INTO events (uuid, event_type, distinct_id, properties, os_name, "timestamp", received_at)
                   VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, now() - interval '1 hour')""",
                [
                    (
                        event_type,
                        user,
                        props if isinstance(props, str) else orjson.dumps(props).decode(),
                        ("iOS", "Android")[len(user) % 2],
                        at,
                    )
                    for user, event_type, at, props in planted_events()
                ],
            )
        ch.load_arrivals(pg, client, target, timedelta(minutes=5))
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine, client, target
    engine.dispose()


FUNNELS = [
    (["open", "view"], timedelta(hours=24), None, []),
    (["open", "view", "cart", "buy"], timedelta(days=7), None, []),
    (["view", "view", "buy"], timedelta(hours=6), None, []),
    (["open", "view"], timedelta(hours=24), "os_name", []),
    (["open", "view", "cart"], timedelta(days=2), "properties.plan", []),
    (["open", "cart"], timedelta(days=3), "properties.price", []),
    (["open", "view"], timedelta(days=3), "properties.nested", []),
    (["open", "view"], timedelta(days=7), None, ["properties.plan=pro"]),
    (["open", "view"], timedelta(days=7), None, ["properties.plan!=pro"]),
    (["view", "buy"], timedelta(days=7), "properties.plan", ["properties.price>1.5", "properties.price<=10"]),
    (["open", "buy"], timedelta(days=7), None, ["properties.price=1.50"]),
    (["open", "buy"], timedelta(days=7), None, ["properties.price>=-3.25", "properties.plan!=team"]),
    (["open", "view"], timedelta(days=7), None, ['properties.nested={"k": "x"}']),
    (["open", "view", "cart"], timedelta(days=7), None, ["properties.price=true"]),
    (["open", "view"], timedelta(days=7), "properties.plan", ["properties.price=12", "properties.plan!=free"]),
]


@pytest.mark.parametrize(("steps", "window", "breakdown", "filters"), FUNNELS)
def test_clickhouse_funnel_equals_postgres(engines, steps, window, breakdown, filters):
    engine, client, target = engines
    parsed = parse_filters(filters)
    where, params = filters_sql(parsed)
    params.update(funnel_params(steps, START, END, window))
    with engine.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        pg_rows = [
            tuple(r) for r in conn.execute(sa.text(funnel_sql(len(steps), parse_breakdown(breakdown), where)), params)
        ]
    ch_where, ch_params = clickhouse_filters_sql(parsed)
    ch_params.update(clickhouse_funnel_params(steps, START, END, window))
    sql = clickhouse_funnel_sql(target.database, len(steps), clickhouse_breakdown(breakdown), ch_where)
    ch_rows = [
        (bool(t), bd, int(step), int(users), med)
        for t, bd, step, users, med in client.query(sql, parameters=ch_params).result_rows
    ]
    expected = shape_results(steps, pg_rows, breakdown is not None)
    assert expected["results"][0]["users"] > 0, "the planted data must reach this funnel"
    assert shape_results(steps, ch_rows, breakdown is not None) == expected


def test_clickhouse_funnel_endpoint_answers_from_clickhouse_what_postgres_answers(engines, database_url, chdb_url):
    from ingest_api.admin.key_store import create_admin_key

    _, client, target = engines
    _, key = create_admin_key(database_url, "clickhouse-queries")
    headers = {"Authorization": f"Bearer {key}"}
    query = {
        "steps": "open,view,cart",
        "window": "2d",
        "start": START.isoformat(),
        "end": END.isoformat(),
        "breakdown": "properties.plan",
        "filter": ["properties.price>1", "properties.plan!=team"],
    }
    path = "/api/v1/analytics/admin/funnels/"
    with (
        RunningServer(settings_for(database_url)) as on_postgres,
        RunningServer(settings_for(database_url, clickhouse_url=chdb_url)) as on_clickhouse,
    ):
        postgres = httpx.get(on_postgres.url + path, params=query, headers=headers)
        clickhouse = httpx.get(on_clickhouse.url + path, params=query, headers=headers)
        assert postgres.status_code == clickhouse.status_code == 200, clickhouse.text
        assert clickhouse.json() == postgres.json() and postgres.json()["results"][0]["users"] > 0
        # The ClickHouse server reads ClickHouse: a user only there counts there only.
        client.command(
            f"INSERT INTO {target.database}.events (uuid, event_type, distinct_id, properties, property_texts_json, "
            f"timestamp, received_at, ingest_seq) VALUES (generateUUIDv4(), 'open', 'only-in-clickhouse', "
            f"'{{\"price\": 5}}', '{{\"price\": \"5\"}}', '{(START + timedelta(hours=1)):%Y-%m-%d %H:%M:%S}', now64(6), 0)"
        )
        try:
            first = httpx.get(on_clickhouse.url + path, params=query, headers=headers).json()["results"][0]
            assert first["users"] == postgres.json()["results"][0]["users"] + 1
            assert httpx.get(on_postgres.url + path, params=query, headers=headers).json() == postgres.json()
        finally:
            client.command(f"DELETE FROM {target.database}.events WHERE distinct_id = 'only-in-clickhouse'")


@pytest.mark.parametrize(
    "query",
    [
        {"breakdown": "properties.plan"},
        {"filter": ["properties.price>1.5"], "breakdown": "os_name"},
        {"filter": ["properties.plan!=pro", 'properties.nested={"k": "y"}'], "event_type": "view"},
        {"breakdown": "properties.price"},
    ],
)
def test_clickhouse_segmented_event_counts_are_postgres_counts_at_every_moment(engines, database_url, chdb_url, query):
    """Exact although ClickHouse lags: arrivals not loaded yet and erasures not applied yet are accounted for."""
    import psycopg

    from ingest_api.admin.key_store import create_admin_key

    _, key = create_admin_key(database_url, "clickhouse-counts")
    headers = {"Authorization": f"Bearer {key}"}
    params = {"start": START.isoformat(), "end": END.isoformat(), **query}
    path = "/api/v1/analytics/admin/events/event_counts/"
    with (
        RunningServer(settings_for(database_url)) as on_postgres,
        RunningServer(settings_for(database_url, clickhouse_url=chdb_url)) as on_clickhouse,
        psycopg.connect(database_url, autocommit=True) as pg,
    ):

        def both_answer_alike() -> dict:
            postgres = httpx.get(on_postgres.url + path, params=params, headers=headers)
            clickhouse = httpx.get(on_clickhouse.url + path, params=params, headers=headers)
            assert postgres.status_code == clickhouse.status_code == 200, clickhouse.text
            assert clickhouse.json() == postgres.json()
            return postgres.json()

        assert both_answer_alike()["total"] > 0
        # Arrivals ClickHouse has not loaded, and a person erased in Postgres only (queued for the next load).
        pg.execute(
            """INSERT INTO events (uuid, event_type, distinct_id, properties, os_name, "timestamp", received_at)
               SELECT gen_random_uuid(), 'view', 'fresh-' || i, '{"plan": "pro", "price": 3, "nested": {"k": "y"}}',
                      'iOS', %s, now() FROM generate_series(1, 5) AS i""",
            (START + timedelta(hours=5),),
        )
        (victim,) = pg.execute("SELECT distinct_id FROM events WHERE properties ? 'plan' LIMIT 1").fetchone()
        erased = pg.execute("DELETE FROM events WHERE distinct_id = %s", (victim,)).rowcount
        pg.execute("INSERT INTO clickhouse_erasures (distinct_ids) VALUES (ARRAY[%s])", (victim,))
        try:
            assert erased > 0
            both_answer_alike()
        finally:
            pg.execute("DELETE FROM events WHERE distinct_id LIKE 'fresh-%'")


PROMOTED = [("plan", "text"), ("price", "numeric")]
PROMOTED_CASES = [case for case in FUNNELS if "plan" in str(case[2:]) or "price" in str(case[2:])]


def clickhouse_funnel(client, target, steps, window, breakdown, filters, promoted) -> tuple[str, dict]:
    ch_where, ch_params = clickhouse_filters_sql(parse_filters(filters), promoted=promoted)
    ch_params.update(clickhouse_funnel_params(steps, START, END, window))
    sql = clickhouse_funnel_sql(target.database, len(steps), clickhouse_breakdown(breakdown, promoted), ch_where)
    rows = [(bool(t), bd, int(s), int(u), m) for t, bd, s, u, m in client.query(sql, parameters=ch_params).result_rows]
    return sql, shape_results(steps, rows, breakdown is not None)


def test_clickhouse_promoted_properties_are_columns_read_by_the_queries_with_the_same_answers(
    engines, database_url, chdb_url
):
    """`eventtrack promote-property` with ClickHouse configured: a materialized column per promoted property,
    computed for the rows already loaded, that filters and breakdowns read instead of the property map;
    every answer is what it was before and what Postgres answers. A ClickHouse loaded afresh gets the
    columns from its first load."""
    import io

    import psycopg

    from eventtrack.analytics.segments import clickhouse_promoted_column
    from eventtrack_cli.clickhouse_commands import clickhouse_promote
    from ingest_api.promote import index_name, promote_property

    _, client, target = engines
    with psycopg.connect(database_url, autocommit=True) as pg:  # what earlier tests changed (erasures)
        ch.load_arrivals(pg, client, target, timedelta(0))
    columns = {clickhouse_promoted_column(key, kind) for key, kind in PROMOTED}
    assert ch.promoted_columns(client, target) == frozenset()
    before = {i: clickhouse_funnel(client, target, *case, frozenset())[1] for i, case in enumerate(PROMOTED_CASES)}
    again = ch.Target(url=chdb_url, database="promoted_afresh")
    try:
        for key, kind in PROMOTED:
            promote_property(database_url, key, kind)
        out = io.StringIO()
        clickhouse_promote(settings_for(database_url, clickhouse_url=chdb_url), out)
        assert all(column in out.getvalue() for column in columns), out.getvalue()
        promoted = ch.promoted_columns(client, target)
        assert promoted == columns
        # Written into every part already there (MATERIALIZE COLUMN), not only computed on read.
        written = client.query(
            "SELECT column, count() FROM system.parts_columns WHERE database = {db:String} AND table = 'events'"
            " AND active AND column IN {cols:Array(String)} GROUP BY column",
            parameters={"db": target.database, "cols": sorted(columns)},
        ).result_rows
        parts = client.query(
            "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'events' AND active",
            parameters={"db": target.database},
        ).result_rows[0][0]
        assert dict(written) == dict.fromkeys(columns, parts)

        read_from_columns = 0
        for i, (steps, window, breakdown, filters) in enumerate(PROMOTED_CASES):
            sql, answer = clickhouse_funnel(client, target, steps, window, breakdown, filters, promoted)
            # plan's text and price's number come from their columns (price's text, e.g. price=1.50, from the map).
            assert "property_text['plan']" not in sql and "JSONType(properties, 'price')" not in sql
            read_from_columns += any(column in sql for column in columns)
            assert answer == before[i]
        assert read_from_columns >= 6
        # ... which are Postgres's answers (test_clickhouse_funnel_equals_postgres compares `before`'s kind).
        where, params = filters_sql(parse_filters(["properties.price>1.5", "properties.price<=10"]))
        params.update(funnel_params(["view", "buy"], START, END, timedelta(days=7)))
        with engines[0].connect() as conn:
            pg_rows = [
                tuple(r)
                for r in conn.execute(sa.text(funnel_sql(2, parse_breakdown("properties.plan"), where)), params)
            ]
        case = PROMOTED_CASES.index(FUNNELS[9])
        assert shape_results(["view", "buy"], pg_rows, True) == before[case]

        # The endpoints read the columns too, and still answer what Postgres answers.
        from ingest_api.admin.key_store import create_admin_key

        _, key = create_admin_key(database_url, "clickhouse-promoted")
        headers = {"Authorization": f"Bearer {key}"}
        window = {"start": START.isoformat(), "end": END.isoformat()}
        requests = [
            ("/api/v1/analytics/admin/funnels/", {"steps": "open,view,cart", "window": "2d", "breakdown": "properties.price", "filter": ["properties.price>1", "properties.plan!=team"]}),
            ("/api/v1/analytics/admin/events/event_counts/", {"breakdown": "properties.plan", "filter": "properties.price<=10"}),
        ]  # fmt: skip
        with (
            RunningServer(settings_for(database_url)) as on_postgres,
            RunningServer(settings_for(database_url, clickhouse_url=chdb_url)) as on_clickhouse,
        ):
            answers = {}
            for path, query in requests:
                postgres = httpx.get(on_postgres.url + path, params={**window, **query}, headers=headers)
                clickhouse = httpx.get(on_clickhouse.url + path, params={**window, **query}, headers=headers)
                assert postgres.status_code == clickhouse.status_code == 200, clickhouse.text
                assert clickhouse.json() == postgres.json()
                answers[path] = postgres.json()
            # Read from the columns: an event whose columns say plan=pro, price=5 and whose map says nothing
            # (written so on purpose) counts on ClickHouse only if the endpoints read the columns.
            plan, price = (clickhouse_promoted_column(key, kind) for key, kind in PROMOTED)
            client.command(
                f"INSERT INTO {target.database}.events (uuid, event_type, distinct_id, properties, "
                f"property_texts_json, timestamp, received_at, ingest_seq, {plan}, {price}) VALUES (generateUUIDv4(), "
                f"'open', 'only-in-columns', '{{}}', '{{}}', '{(START + timedelta(hours=1)):%Y-%m-%d %H:%M:%S}', "
                "now64(6), 0, 'pro', 5)",
                settings={"insert_allow_materialized_columns": 1},
            )
            try:
                (funnel_path, funnel_query), (counts_path, counts_query) = requests
                funnel = httpx.get(on_clickhouse.url + funnel_path, params={**window, **funnel_query}, headers=headers)
                assert funnel.json()["results"][0]["users"] == answers[funnel_path]["results"][0]["users"] + 1
                counts = httpx.get(on_clickhouse.url + counts_path, params={**window, **counts_query}, headers=headers)
                assert counts.json()["total"] == answers[counts_path]["total"] + 1
            finally:
                client.command(f"DELETE FROM {target.database}.events WHERE distinct_id = 'only-in-columns'")

        # A ClickHouse loaded afresh (new, or started again empty) gets the columns from its first load.
        fresh = ch.connect(again)
        with psycopg.connect(database_url, autocommit=True) as pg:
            ch.load_arrivals(pg, fresh, again, timedelta(minutes=5))
        assert ch.promoted_columns(fresh, again) == columns
        assert clickhouse_funnel(fresh, again, *PROMOTED_CASES[-1], columns)[1] == before[len(PROMOTED_CASES) - 1]
    finally:
        with psycopg.connect(database_url, autocommit=True) as pg:
            for key, kind in PROMOTED:
                pg.execute(f'DROP INDEX IF EXISTS "{index_name(key, kind)}"')
            pg.execute("DELETE FROM promoted_properties")
        for column in columns:
            client.command(f"ALTER TABLE {target.database}.events DROP COLUMN IF EXISTS {column}")
        client.command(f"DROP DATABASE IF EXISTS {again.database} SYNC")


def test_clickhouse_promote_ddl_on_a_cluster_alters_the_local_and_the_distributed_table(engines):
    _, client, _ = engines
    target = ch.Target.parse("http://u:p@ch1:8123/analytics", cluster="events_cluster")
    ddl = ch.promote_ddl(target, "plan", "text")
    column = "p_text_" + ddl[0].split("p_text_")[1].split()[0]
    assert ddl == [
        f"ALTER TABLE analytics.events_local ON CLUSTER events_cluster ADD COLUMN IF NOT EXISTS {column}"
        " Nullable(String) MATERIALIZED if(mapContains(property_text, 'plan'), property_text['plan'], NULL)",
        f"ALTER TABLE analytics.events ON CLUSTER events_cluster ADD COLUMN IF NOT EXISTS {column}"
        " Nullable(String) MATERIALIZED if(mapContains(property_text, 'plan'), property_text['plan'], NULL)",
        f"ALTER TABLE analytics.events_local ON CLUSTER events_cluster MATERIALIZE COLUMN {column}",
    ]
    for statement in [*ddl, *ch.promote_ddl(target, "price", "numeric")]:  # ClickHouse's own parser accepts each
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
