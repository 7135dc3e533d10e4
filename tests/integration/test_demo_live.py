"""``llmwatch demo`` as a user runs it: a subprocess with its own broker, worker and console.

A short, fast run must print firing alerts, a summary and exit 0 with the worker
stopped cleanly; ^C must stop everything early and still print the summary.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ALERT = re.compile(r"^\[\d+:\d\d\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (FIRING|RESOLVED) ")


def _demo(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", "demo", "--out", str(out), *args]


def _worker_gone(text: str) -> bool:
    """The worker's web port (printed by the demo) no longer answers."""
    m = re.search(r"metrics (http://127\.0\.0\.1:\d+)/metrics", text)
    assert m, text
    try:
        urllib.request.urlopen(f"{m.group(1)}/healthz", timeout=1).close()
    except OSError:
        return True
    return False


def test_live_demo_prints_alerts_and_summary_and_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        _demo(out, "--duration", "20s", "--speed", "20", "--rate", "100"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    lines = proc.stdout.splitlines()
    alerts = [ln for ln in lines if ALERT.match(ln)]
    assert any(" FIRING " in ln for ln in alerts), text
    summary = lines[lines.index("--- summary ---") :]
    published = next(ln for ln in summary if ln.startswith("events published"))
    assert "failed 0" in published
    alerted = next(ln for ln in summary if ln.startswith("event->alert"))
    got, of = map(int, re.search(r"(\d+)/(\d+) incidents alerted", alerted).groups())  # type: ignore[union-attr]
    assert of == 5 and got >= 3, text
    assert summary[-1] == "shutdown           worker exited 0 in " + summary[-1].split(" in ")[-1]
    assert "Traceback" not in text
    # Every alert line the console printed is kept, in order, as replay's alerts.jsonl.
    kept = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert len(kept) == len(alerts)
    assert all(k["title"] in ln for k, ln in zip(kept, alerts, strict=True))
    log = (out / "worker.log").read_text()
    assert "Traceback" not in log and "CRITICAL" not in log, log[-3000:]
    assert _worker_gone(text)


def test_ctrl_c_stops_the_demo_early_with_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    stdout = tmp_path / "stdout.txt"
    with stdout.open("w") as fh:
        proc = subprocess.Popen(
            _demo(out, "--duration", "5m"), cwd=REPO, stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "streaming" not in stdout.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, stdout.read_text()
            time.sleep(0.2)  # watching another process's output
        assert "streaming" in stdout.read_text()
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=45)
        stopped_in = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout.read_text()
    assert rc == 130, text
    assert "interrupted; stopping" in text and "--- summary ---" in text
    assert "worker exited 0" in text
    assert _worker_gone(text)
    print(f"\nstopped {stopped_in:.1f} s after ^C")
