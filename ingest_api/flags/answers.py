"""The native `for_user` answer: every flag's outcome for one user, as the JSON body the endpoint sends.

Built per flag snapshot (the config cache makes one each time the flags change):
each flag's possible outcomes are known once it is compiled, so their JSON
pieces (`"key":{"active":...,"variant":...,"payload":...}`) are written then,
and an answer is the join of the pieces the user's outcomes pick: no result
objects, no serializer. The bytes are those `orjson.dumps` gave for the whole
dict, so ETags held by clients stay valid.

SDKs ask again and again for the same user: the last CACHE_SIZE answers (per
worker) are kept, keyed by the text of the request the user was read from (the
query string, the JSON body): the same text is the same user with the same
properties, whatever their types, and costs nothing to key by. A new snapshot
starts with an empty cache, so a changed flag is never answered from it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from ingest_api.flags.evaluator import CompiledFlag, FlagResult
from ingest_api.responses import etag_of

CACHE_SIZE = 4096  # answers of ~60 bytes per flag: a few MB per worker at most
MAX_CACHED_TEXT = 1024  # users read from a longer request text are answered, not cached


class UserAnswer(NamedTuple):
    body: bytes
    etag: str
    outcomes: tuple[int, ...]  # per flag, the index of the user's outcome (CompiledFlag.outcomes)


def _piece(key: str, result: FlagResult) -> bytes:
    return (
        orjson.dumps(key)
        + b":"
        + orjson.dumps({"active": result.active, "variant": result.variant, "payload": result.payload})
    )


class ForUserAnswers:
    def __init__(self, flags: Sequence[tuple[str, bool, CompiledFlag]]):
        """`flags`: (key, active, compiled), in the order of the answer."""
        self._decides = tuple(compiled.decide for _, _, compiled in flags)
        self._pieces = tuple(tuple(_piece(key, r) for r in compiled.outcomes) for key, _, compiled in flags)
        # What an exposure records per outcome (the variant, else whether it is on); inactive flags record none.
        self._exposures = tuple(
            (key, tuple(r.variant or r.active for r in compiled.outcomes)) for key, active, compiled in flags if active
        )
        self._exposed_flags = tuple(i for i, (_, active, _) in enumerate(flags) if active)
        self._cache: OrderedDict[tuple[str, bytes], UserAnswer] = OrderedDict()

    def answer(self, distinct_id: str, properties: Mapping[str, Any], source: tuple[str, bytes] | None) -> UserAnswer:
        """`source`: the request's text the user was read from, by kind (("GET", query string), ("POST", body)).
        The same text gives the same user, hence the same answer: it is the cache's key. None: not cached."""
        if source is None or len(source[1]) > MAX_CACHED_TEXT:
            return self._answer(distinct_id, properties)
        cached = self._cache.get(source)
        if cached is not None:
            self._cache.move_to_end(source)
            return cached
        answer = self._cache[source] = self._answer(distinct_id, properties)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return answer

    def _answer(self, distinct_id: str, properties: Mapping[str, Any]) -> UserAnswer:
        id_bytes = distinct_id.encode()
        outcomes = tuple([decide(id_bytes, properties) for decide in self._decides])
        body = b"{" + b",".join([pieces[i] for pieces, i in zip(self._pieces, outcomes)]) + b"}"
        return UserAnswer(body, etag_of(body), outcomes)

    def exposures(self, answer: UserAnswer) -> list[tuple[str, Any]]:
        """(flag key, variant or on/off) of each active flag in `answer`, for `$feature_flag_called` events."""
        return [
            (key, responses[answer.outcomes[i]])
            for i, (key, responses) in zip(self._exposed_flags, self._exposures, strict=True)
        ]
