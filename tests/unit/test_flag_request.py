"""The user a flag request names (native /for_user/, PostHog /flags/ and /decide/ read it the same way)."""

import pytest

from eventtrack.errors import ApiError
from ingest_api.flags.request import flag_distinct_id, object_field


@pytest.mark.parametrize(
    "value, expected", [("u1", "u1"), (42, "42"), ("a\x00b", "ab"), ("x" * 200, "x" * 200), ("\ud800", "\ufffd")]
)
def test_a_distinct_id_is_a_string_or_an_integer_made_storable(value, expected):
    assert flag_distinct_id({"distinct_id": value}) == expected


@pytest.mark.parametrize(
    "data", [{}, {"distinct_id": ""}, {"distinct_id": "x" * 201}, {"distinct_id": True}, {"distinct_id": 1.5}]
)
def test_a_missing_or_unusable_distinct_id_is_a_validation_error(data):
    with pytest.raises(ApiError) as info:
        flag_distinct_id(data)
    assert (info.value.code, info.value.fields) == ("validation_error", {"distinct_id": "is required"})


def test_an_object_field_is_optional_and_kept_as_sent():
    assert object_field({}, "properties") == {}
    assert object_field({"properties": None}, "properties") == {}
    assert object_field({"person_properties": {"plan": "pro"}}, "person_properties") == {"plan": "pro"}


@pytest.mark.parametrize("value", [[], "pro", 1])
def test_an_object_field_that_is_not_an_object_names_itself(value):
    with pytest.raises(ApiError) as info:
        object_field({"person_properties": value}, "person_properties")
    assert info.value.code == "validation_error"
    assert info.value.detail == "person_properties must be a JSON object."
    assert info.value.fields == {"person_properties": "must be an object"}
