"""The native for_user answer built from per-outcome pieces (ingest_api/flags/answers.py): the same bytes (hence
ETags) as serializing the interpreter's results, the same exposures, and a per-user cache that a new snapshot
empties."""

from __future__ import annotations

import random

import orjson

from ingest_api.config_cache import CachedFlag, for_user_answers
from ingest_api.flags import answers as answers_module
from ingest_api.flags.definition import parse_flag_definition
from ingest_api.responses import etag_of
from tests.unit.flag_reference import reference_evaluate


def _flags(definitions: list[dict]) -> tuple[CachedFlag, ...]:
    return tuple(
        CachedFlag.of({**parse_flag_definition(d), "id": i, "version": 1}) for i, d in enumerate(definitions, 1)
    )


DEFINITIONS = [
    {"key": "rollout", "rollout_percentage": 45, "payload": {"limit": 3}},
    {
        "key": "multi",
        "rollout_percentage": 70,
        "variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "test", "rollout_percentage": 50, "payload": {"color": "green", "sizes": [1, 2.5]}},
        ],
    },
    {
        "key": "targeted",
        "rollout_percentage": 60,
        "conditions": [
            {
                "properties": [
                    {"key": "os_name", "operator": "exact", "value": "iOS"},
                    {"key": "app_version", "operator": "semver_gte", "value": "3.1.0"},
                ]
            },
            {"properties": [{"key": "plan", "operator": "in", "value": ["pro", "team"]}], "rollout_percentage": 100},
        ],
    },
    {"key": "retired", "active": False, "rollout_percentage": 100, "payload": "never"},
    {"key": "text", "rollout_percentage": 100, "payload": 'ünïcode \u2028 \x7f "quoted" \\ \n'},
]


def _users(n: int) -> list[tuple[str, dict]]:
    rng = random.Random(3)
    return [
        (
            rng.choice([f"user-{rng.randrange(10**7)}", "é-ü", "1"]),
            {
                "os_name": rng.choice(["iOS", "ios", "Android"]),
                "app_version": rng.choice(["3.0.0", "3.1.2", "v4"]),
                **({"plan": rng.choice(["pro", "free"])} if rng.random() < 0.5 else {}),
            },
        )
        for _ in range(n)
    ]


def test_the_body_is_byte_for_byte_the_serialized_results_so_etags_stay_valid():
    flags = _flags(DEFINITIONS)
    answers = for_user_answers(flags)
    for distinct_id, properties in _users(500):
        results = {f.data["key"]: reference_evaluate(f.definition, distinct_id, properties) for f in flags}
        expected = orjson.dumps(
            {key: {"active": r.active, "variant": r.variant, "payload": r.payload} for key, r in results.items()}
        )
        answer = answers.answer(distinct_id, properties, None)
        assert answer.body == expected
        assert answer.etag == etag_of(expected)
        # One `$feature_flag_called` per active flag: its variant, else whether it is on.
        assert answers.exposures(answer) == [
            (key, r.variant or r.active) for key, r in results.items() if key != "retired"
        ]


def test_no_flags_answer_an_empty_object():
    answer = for_user_answers(()).answer("u", {}, ("GET", b"distinct_id=u"))
    assert answer.body == b"{}" and for_user_answers(()).exposures(answer) == []


def test_the_same_request_text_is_answered_from_the_cache_and_others_are_not():
    answers = for_user_answers(_flags(DEFINITIONS))
    first = answers.answer("u", {"plan": "pro"}, ("GET", b"distinct_id=u&plan=pro"))
    assert answers.answer("u", {"plan": "pro"}, ("GET", b"distinct_id=u&plan=pro")) is first
    assert answers.answer("u", {"plan": "pro"}, ("POST", b"distinct_id=u&plan=pro")) is not first
    assert answers.answer("u", {"plan": "pro"}, None) is not first
    assert answers.answer("u", {"plan": "pro"}, None) == first


def test_a_new_snapshot_starts_with_an_empty_cache():
    source = ("GET", b"distinct_id=u")
    before = for_user_answers(_flags(DEFINITIONS)).answer("u", {}, source)
    changed = [{**d, "rollout_percentage": 0} if d["key"] == "text" else d for d in DEFINITIONS]
    after = for_user_answers(_flags(changed)).answer("u", {}, source)
    assert orjson.loads(before.body)["text"]["active"] is True
    assert orjson.loads(after.body)["text"] == {"active": False, "variant": None, "payload": None}
    assert after.etag != before.etag


def test_the_cache_keeps_the_most_recently_used_answers_up_to_its_size(monkeypatch):
    monkeypatch.setattr(answers_module, "CACHE_SIZE", 3)
    answers = for_user_answers(_flags(DEFINITIONS))

    def ask(n: int):
        return answers.answer(f"u{n}", {}, ("GET", f"distinct_id=u{n}".encode()))

    one, two, _ = ask(1), ask(2), ask(3)
    assert ask(1) is one  # used again: now the most recent
    ask(4)  # evicts u2, the least recently used
    assert ask(1) is one
    assert ask(2) is not two


def test_a_long_request_text_is_answered_but_not_kept():
    answers = for_user_answers(_flags(DEFINITIONS))
    source = ("POST", b"x" * (answers_module.MAX_CACHED_TEXT + 1))
    first = answers.answer("u", {}, source)
    assert answers.answer("u", {}, source) is not first
    assert answers.answer("u", {}, source) == first
