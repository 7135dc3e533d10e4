"""Label matcher cost on the ReDoS silence ``host=~"(a+)+$"``: Python's re vs RE2.

Run ``python -m benchmarks.matchers_redos``; prints one JSON object. Python's
backtracking engine is timed on "a"*n + "b" for small n only (it doubles per
character; n=25 takes seconds), RE2 (what stream.alerting.matchers uses) on the same
inputs and on a 10,000-char label.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from stream.alerting.matchers import ENGINE, Matcher

PATTERN = "(a+)+$"


def _best_of(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    backtracking = re.compile(f"^(?:{PATTERN})$")
    matcher = Matcher.model_validate(f'host=~"{PATTERN}"')
    out: dict[str, Any] = {"pattern": PATTERN, "engine": ENGINE, "python_re_s": {}, "re2_us": {}}
    for n in (14, 16, 18, 20, 22):
        text = "a" * n + "b"
        out["python_re_s"][n] = _best_of(lambda text=text: backtracking.match(text), 1)
    for n in (14, 16, 18, 20, 22, 25, 100, 10_000):
        labels = {"host": "a" * n + "b"}
        out["re2_us"][n] = 1e6 * _best_of(lambda labels=labels: matcher.matches(labels), 20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
