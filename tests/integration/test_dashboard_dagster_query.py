"""The overview asks the Dagster webserver for the last run: the query must fit the installed Dagster's GraphQL schema."""

from __future__ import annotations


def test_the_last_run_query_fits_the_installed_dagster_graphql_schema():
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    from ingest_api.dashboard.pipeline_status import QUERY

    schema = create_schema().graphql_schema
    assert validate(schema, parse(QUERY)) == []
    # The check can fail: a field Dagster does not have is reported.
    assert validate(schema, parse("{ runsOrError(limit: 1) { ... on Runs { results { lastRunStatus } } } }"))
