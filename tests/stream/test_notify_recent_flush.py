"""The notifier's active-alerts cache on a disk that refuses writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stream.notify.recent import RecentAlerts
from tests.connectors.notify_fakes import make_alert


def test_flush_that_fails_keeps_the_cache_dirty_and_writes_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The cache's directory is a plain file for now: every write there fails (OSError).
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    recent = RecentAlerts(blocker / "active-alerts.json")
    recent.seen(make_alert(), None)
    with caplog.at_level(logging.ERROR, logger="llmwatch.notify"):
        recent.flush()  # must not raise: the consume loop calls this
    assert "could not write" in caplog.text
    blocker.unlink()  # room again
    recent.flush()
    data = json.loads((blocker / "active-alerts.json").read_text())
    assert [a["fingerprint"] for a in data["alerts"]] == [make_alert().fingerprint]
