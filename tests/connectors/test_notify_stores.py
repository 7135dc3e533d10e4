"""The delivery ledger on disk: survives restarts, torn writes, the old format; compacts."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.notify import JsonFileLedger


def test_entries_survive_a_restart_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path)
    ledger.record("pd|fp1|1.000|firing", "sent")
    ledger.record("pd|fp2|1.000|firing", "dead_lettered")
    ledger.close()
    with path.open("a") as fh:
        fh.write('["pd|fp3|1.000|fir')  # the crash came mid-write
    again = JsonFileLedger(path)
    assert again.seen("pd|fp1|1.000|firing") and again.outcome("pd|fp2|1.000|firing") == (
        "dead_lettered"
    )
    assert not again.seen("pd|fp3|1.000|firing")
    again.record("pd|fp4|1.000|firing", "sent")  # must not be glued to the torn line
    again.close()
    assert JsonFileLedger(path).seen("pd|fp4|1.000|firing")


def test_the_old_single_object_format_is_read_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps({"pd|fp1|1.000|firing": "sent"}))
    ledger = JsonFileLedger(path)
    ledger.record("pd|fp2|1.000|firing", "sent")
    ledger.close()
    reread = JsonFileLedger(path)
    assert reread.seen("pd|fp1|1.000|firing") and reread.seen("pd|fp2|1.000|firing")


def test_the_log_is_compacted_and_capacity_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path, capacity=10)
    for i in range(2000):
        ledger.record(f"k{i}", "sent")
    ledger.close()
    lines = path.read_text().splitlines()
    assert len(lines) < 1100  # rewritten, not 2000 lines long
    reread = JsonFileLedger(path, capacity=10)
    assert reread.seen("k1999") and not reread.seen("k0")
    assert len(reread.snapshot()) == 10
