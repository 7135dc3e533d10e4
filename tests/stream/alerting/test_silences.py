"""The one silence store: a fold of the compacted silences topic."""

from __future__ import annotations

import json
import logging

import pytest

from stream.alerting.matchers import parse_matchers
from stream.alerting.silences import Ack, Silence, SilenceStore, ack_key, silence_key

T = 1_700_000_000.0


def _silence(sid: str, ends: float) -> bytes:
    sil = Silence(sid, parse_matchers(['model=~"llama.*"']), T, ends, "ops", "upgrade")
    return json.dumps(sil.to_dict()).encode()


def test_silences_apply_expire_and_tombstone() -> None:
    state = SilenceStore()
    state.apply(silence_key("s1"), _silence("s1", T + 600))
    labels = {"model": "llama-70b"}
    assert state.silenced_by(labels, T + 1) == "s1"
    assert state.silenced_by({"model": "mistral"}, T + 1) is None
    assert state.silenced_by(labels, T + 600) is None  # ends_at is exclusive
    assert [state.get("s1").state(t) for t in (T - 1, T, T + 600)] == [  # type: ignore[union-attr]
        "pending",
        "active",
        "expired",
    ]
    state.apply(silence_key("s1"), _silence("s1", T + 5))  # expired by rewriting ends_at
    assert state.silenced_by(labels, T + 10) is None and len(state.silences()) == 1
    state.apply(silence_key("s1"), None)
    assert state.silences() == []


def test_acks_expire_and_a_bad_record_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    state = SilenceStore()
    ack = Ack("fp1", "a-1", "alice", T, T + 60, "mine")
    change = state.apply(ack_key("fp1"), json.dumps(ack.to_dict()).encode())
    assert change.ack == ack
    assert state.ack_for("fp1", T + 59) == ack
    assert state.acked("fp1", "a-1", T + 1) == ack and state.acked("fp1", "a-2", T + 1) is None
    assert state.ack_for("fp1", T + 60) is None and state.acks(T + 60) == []
    with caplog.at_level(logging.ERROR):
        assert state.apply(silence_key("bad"), b"{not json").kind == "none"
        assert state.apply(ack_key("fp2"), b'{"fingerprint": "fp2"}').kind == "none"
        # A stored ReDoS regex is refused when folded in, like any bad matcher.
        evil = json.dumps(
            {
                "id": "e",
                "matchers": ['h=~"(?=a)"'],
                "starts_at": T,
                "ends_at": T + 1,
                "created_by": "x",
            }
        ).encode()
        assert state.apply(silence_key("e"), evil).kind == "none"
    assert len(caplog.records) == 3 and state.get("bad") is None
    state.apply(silence_key("s1"), _silence("s1", T + 5))
    assert state.prune(T + 61) == [] and state.acks(T) == []
    assert state.prune(T + 5 + state.retention_s + 1) == ["s1"]
