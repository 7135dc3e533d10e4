"""Differential fuzz of the batch decoders: ``decode_columns`` against the reference.

Generates adversarial batches (truncation, wrong types, 1e309, 2**64, NaN/Infinity
tokens, deep nesting, 10 MB strings, invalid UTF-8, surrogates, duplicate keys, BOM,
unknown and missing fields, far timestamps, two documents in one message, empty and
whitespace messages, non-bytes inputs) mixed with good events, and decodes each batch
with ``decode_columns`` and with ``decode_models`` + ``from_rows``. Counts exceptions
escaping either decoder and messages on which they disagree (verdict, reason, row
values bit for bit, index); both must be 0. Prints one JSON object:

    .venv/bin/python -m benchmarks.fuzz_decode [--messages N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas.columns import COLUMNS_BY_KIND, Columns
from schemas.decode import DEFAULT_MAX_BYTES, DecodePaths, Reject, decode_columns, decode_models

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()
KINDS = ("inference", "gpu", "metric", "feedback")
HUGE_MAX_BYTES = 32 * 1024 * 1024
_TOKEN = "\x00tok\x00"  # a string no generator writes, replaced by a raw JSON token

LABELS = ["a", "gw-1", "model/x", "é", "x" * 256, "x" * 257, "", "日本"]
TIMESTAMPS: list[Any] = [
    "2024-06-01T11:00:00Z", "2024-06-01T11:59:59.123456+00:00", "2024-06-01T10:00:00",
    "2024-06-01T12:04:59Z", "2024-06-01T12:05:01Z", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "2024-02-30T00:00:00Z", "+10000-01-01T00:00:00Z", "2024-06-01", "1717243200",
    "2024-06-01T11:00:00.1234567Z", "2024-06-01 11:00:00Z", "2024-06-01T11:00:00+24:00",
    1717243100, 1717243100.5, 0, -0.0, -1e-7, 4e-7, -1, 1e11, 9e9, 9.1e9, 253402300799,
    253402300800, NOW + 300, NOW + 301, 1717243100123, 2**63, True, None, [],
]  # fmt: skip
RAW_NUMBERS = [
    "1e309", "-1e309", "1e308", "18446744073709551616", "18446744073709551615",
    "9223372036854775808", "9223372036854775807", "-9223372036854775809", "1" + "0" * 400,
    "1e-400", "-0", "-0.0", "0.1e1", "1E2", "NaN", "Infinity", "-Infinity", "nan", "inf",
    "01", "1.", ".5", "+1", "0x10", "1e", "2.5e-5", "123456789.123456789123456789",
]  # fmt: skip
TRICKY: list[Any] = [
    None, True, False, 0, -0.0, -1, 1, 1.0, 1.5, "1.5", "", "x" * 300, "NaN", "Infinity",
    1e308, -1e308, 2**53 + 1, 2**63, 2**63 - 1, 2**64 - 1, -(2**63), [], {}, [1.0], {"a": 1},
    "ok", "stop", "gpu", "inference", 2, 100, 599, 600, 1023, 1024, {"k": "v"}, {"k": 1},
    [3.0, 4.0], 101.0, "\ud800", "\x00", "é" * 200, ["a"], {"": ""},
]  # fmt: skip


def _good(kind: str, rng: random.Random) -> dict[str, Any]:
    ts: Any = rng.choice(TIMESTAMPS[:3]) if rng.random() < 0.7 else rng.uniform(1.6e9, NOW)
    if kind == "inference":
        latency = rng.choice([rng.uniform(0, 1e4), rng.randrange(10**5)])
        event: dict[str, Any] = {
            "kind": "inference",
            "ts": ts,
            "gateway": rng.choice(LABELS[:5]),
            "model": rng.choice(LABELS[:5]),
            "model_version": rng.choice(LABELS[:5]),
            "request_id": f"req-{rng.randrange(10**9)}",
            "status": rng.choice(["ok", "error", "timeout", "cancelled"]),
            "latency_ms": latency,
        }
        optional: dict[str, Any] = {
            "ttft_ms": latency * rng.random(),
            "queue_ms": latency / 2,
            "tpot_ms": rng.uniform(0, 100),
            "http_status": rng.randrange(100, 600),
            "tenant": rng.choice(LABELS[:5]),
            "host": rng.choice([None, "node-1", "é"]),
            "error_type": rng.choice([None, "timeout"]),
            "prompt_tokens": rng.randrange(10**6),
            "completion_tokens": rng.randrange(10**4),
            "finish_reason": rng.choice(["stop", "length", "unknown", "tool_calls"]),
            "refusal": rng.choice([True, False, None]),
            "toxicity": rng.random(),
            "feedback_score": rng.uniform(-1, 1),
            "embedding_norm": rng.uniform(0, 10),
            "schema_version": 1,
            "route": "/v1/x",
        }
    elif kind == "gpu":
        total = rng.uniform(1, 1e5)
        event = {
            "kind": "gpu",
            "ts": ts,
            "host": rng.choice(LABELS[:5]),
            "gpu_index": rng.randrange(1024),
            "gpu_uuid": f"GPU-{rng.randrange(64)}",
            "sm_util_pct": rng.uniform(0, 100),
            "mem_util_pct": rng.randrange(101),
            "mem_used_mib": total * rng.random(),
            "mem_total_mib": total,
            "temp_c": rng.uniform(-50, 150),
            "power_w": rng.uniform(0, 1000),
            "power_limit_w": 700.0,
            "sm_clock_mhz": rng.randrange(3000),
        }
        optional = {
            "clocks_event_reasons": rng.choice([0, 4, 2**64 - 1]),
            "xid": rng.choice([None, 79, 2**63 - 1]),
            "ecc_sbe_total": rng.randrange(100),
            "ecc_dbe_total": 0,
            "pcie_replay_total": rng.randrange(10),
        }
    elif kind == "metric":
        event = {
            "ts": ts,
            "name": rng.choice(LABELS[:5]),
            "value": rng.choice([rng.uniform(-1e9, 1e9), rng.randrange(-(10**6), 10**6)]),
        }
        optional = {
            "labels": {f"k{i}": f"v{rng.randrange(9)}" for i in range(rng.randrange(4))},
            "kind": "metric",
        }
    else:
        event = {
            "ts": ts,
            "request_id": f"r{rng.randrange(10**6)}",
            "model": rng.choice(LABELS[:5]),
            "model_version": rng.choice(LABELS[:5]),
            "score": rng.uniform(-1, 1),
        }
        optional = {"label": rng.choice(["good", "x" * 70]), "kind": "feedback"}
    for key in rng.sample(sorted(optional), rng.randrange(len(optional) + 1)):
        event[key] = optional[key]
    return event


def _dump(obj: Any, rng: random.Random) -> bytes:
    text = json.dumps(
        obj, ensure_ascii=rng.random() < 0.3, separators=rng.choice([(",", ":"), None])
    )
    return text.encode("utf-8", "surrogatepass")


def _with_token(event: dict[str, Any], key: str, token: str, rng: random.Random) -> bytes:
    event[key] = _TOKEN
    return _dump(event, rng).replace(json.dumps(_TOKEN).encode(), token.encode())


def _mutate(kind: str, rng: random.Random, clean: bool) -> bytes:
    """One adversarial message; ``clean``: only valid JSON objects of known fields, so a
    whole batch of them still takes the columnar (msgspec) path."""
    event = _good(kind, rng)
    keys = [*event, "kind", "schema_version", "ts", "labels", "embedding", "value"]
    key = rng.choice(keys)
    roll = rng.randrange(13 if clean else 24)
    if roll == 0:
        return _dump(event, rng)
    if roll == 1:
        event[key] = rng.choice(TRICKY)
    elif roll == 2:
        event.pop(key, None)
    elif roll == 3:
        event["ts"] = rng.choice(TIMESTAMPS)
    elif roll == 4:
        number = rng.choice(RAW_NUMBERS[:10])  # ones msgspec and orjson both parse, or both not
        return _with_token(event, key, number, rng)
    elif roll == 5:  # duplicate keys: the first or the last one wins?
        first = json.dumps({key: rng.choice(TRICKY)})[1:-1].encode()
        return b"{" + first + b"," + _dump(event, rng)[1:]
    elif roll == 6:
        event[key] = "é" * rng.choice([1, 64, 128, 129, 256, 257])
    elif roll == 7:
        event[key] = rng.choice(
            [[1.0] * rng.choice([1, 64, 65]), {f"k{i}": "v" for i in range(33)}]
        )
    elif roll == 8:
        event[key] = rng.choice(["\ud83d\ude00", "\ud800", "\udc00x", "a\u0000b"])
    elif roll == 9:
        n = rng.choice([2, 50, 200, 999, 1500])
        return _with_token(event, key, "[" * n + "]" * n, rng)
    elif roll == 10:
        event[key] = rng.choice([2**64, 2**63, -(2**63) - 1, 10**30, 2**1030])
    elif roll == 11:
        event[key] = rng.choice([1e-320, 5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2])
    elif roll == 12:
        event["ts"] = rng.choice([NOW + 299.9999995, NOW + 300.0000004, 1e-7, 253402300799.9999995])
    # Below here: messages that are not one valid JSON object of known fields.
    elif roll == 13:
        raw = _dump(event, rng)
        return raw[: rng.randrange(len(raw))]
    elif roll == 14:
        return _with_token(event, key, rng.choice(RAW_NUMBERS), rng)
    elif roll == 15:
        other = _dump(_good(kind, rng), rng)
        sep = rng.choice([b"", b" ", b"\r", b"\t", b"\n", b"\r\n", b" \n ", b"\x00"])
        return _dump(event, rng) + sep + other
    elif roll == 16:
        return rng.choice([b"", b" ", b"\t", b"\r", b"\n", b"\r\n", b"   \n\t", b"\x00", b"null"])
    elif roll == 17:
        text = _dump(event, rng)
        at = rng.randrange(len(text))
        junk = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"])
        return text[:at] + junk + text[at:]
    elif roll == 18:
        return b"\xef\xbb\xbf" + _dump(event, rng)
    elif roll == 19:
        event[rng.choice(["extra", "unknown_field", "Kind", "latency_ms "])] = rng.choice(TRICKY)
    elif roll == 20:
        n = rng.choice([600, 1025, 5000])
        return _with_token(event, key, '{"a":' * n + "1" + "}" * n, rng)
    elif roll == 21:
        return rng.choice([b"[]", b"[1,2]", b"42", b'"s"', b"true", b"{", b"}", b"{}", b"{,}"])
    elif roll == 22:
        raw = _dump(event, rng)
        return raw.replace(b'":', b'"\r\n:', 1) if rng.random() < 0.5 else raw + b"\n"
    else:
        return _with_token(
            event,
            key,
            '"' + rng.choice(["\\ud800", "\\udfff\\ud800", "\\x41", "\\u00e9"]) + '"',
            rng,
        )
    return _dump(event, rng)


def _clean(kind: str, rng: random.Random) -> bytes:
    """A mutation the columnar parser still takes, so its batch stays on that path."""
    from schemas._fast import load_fields

    for _ in range(20):
        raw = _mutate(kind, rng, True)
        if load_fields([raw], kind) is not None:
            return raw
    return _dump(_good(kind, rng), rng)


@dataclass
class Counts:
    messages: int = 0
    accepted: int = 0
    rejected: int = 0
    exceptions: int = 0
    disagreements: int = 0
    isolated: int = 0  # rejects naming an exception the decoder caught
    fallback: int = 0  # messages of batches the columnar code raised on
    batches: int = 0
    columnar: int = 0
    per_message: int = 0
    reference: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text[:2000])


def _batches(total: int, seed: int) -> Iterator[tuple[str, list[Any], int]]:
    """(kind, messages, max_bytes) until ``total`` messages have been made."""
    rng = random.Random(seed)
    made = 0
    while made < total:
        kind = rng.choice(KINDS)
        mode = rng.random()
        size = min(total - made, rng.choice([1, 2, 3, 5, 8, 17, 32, 64, 100, 200, 500, 1024, 2000]))
        max_bytes = DEFAULT_MAX_BYTES
        if mode < 0.35:  # clean: every message one JSON object of known fields
            batch: list[Any] = [
                _dump(_good(kind, rng), rng) if rng.random() < 0.8 else _clean(kind, rng)
                for _ in range(size)
            ]
        elif mode < 0.40:  # every message valid: the columnar path all the way
            batch = [_dump(_good(kind, rng), rng) for _ in range(size)]
        elif mode < 0.45:  # as many two-document messages as empty ones: counts still match
            batch = [_dump(_good(kind, rng), rng) for _ in range(size)]
            for _ in range(rng.randrange(1, 4) if size > 1 else 0):
                two, blank = rng.sample(range(size), 2)
                sep = rng.choice([b"", b" ", b"\r", b"\t", b"\r\n"])
                batch[two] = batch[two] + sep + _dump(_good(kind, rng), rng)
                batch[blank] = rng.choice([b"", b" ", b"   ", b"\t", b"\r"])
        else:
            bad_share = rng.choice([0.01, 0.1, 0.5, 1.0])
            batch = [
                _mutate(kind, rng, False)
                if rng.random() < bad_share
                else _dump(_good(kind, rng), rng)
                for _ in range(size)
            ]
            if rng.random() < 0.02:
                batch[rng.randrange(size)] = rng.choice(
                    [bytearray(b"{}"), memoryview(b"[]"), "{}", None, 5]
                )
        # A few 10 MB strings (the first batch always has one), parsed, not just over the limit.
        if made == 0 or rng.random() < 0.0001 * size:
            event = _good(kind, rng)
            event[rng.choice([*event, "request_id"])] = "x" * 10_000_000
            batch[rng.randrange(size)] = _dump(event, rng)
            max_bytes = HUGE_MAX_BYTES
        elif rng.random() < 0.05:
            max_bytes = rng.choice([16, 300, HUGE_MAX_BYTES])
        made += size
        yield kind, batch, max_bytes


def _verdicts(rejects: list[Reject], n: int) -> list[Any]:
    out: list[Any] = ["ok"] * n
    for r in rejects:
        out[r.index] = (r.reason, r.location, r.exception, r.raw)
    return out


def _rows(cols: Columns) -> list[tuple[Any, ...]]:
    """Each row as a tuple of comparable values (floats by their bits: NaN == NaN)."""
    arrays = []
    for f in fields(cols):
        arr = getattr(cols, f.name)
        arrays.append(arr.view(np.int64).tolist() if arr.dtype == np.float64 else arr.tolist())
    return list(zip(*arrays, strict=True)) if arrays else []


def _compare(kind: str, batch: list[Any], max_bytes: int, counts: Counts, alone: bool) -> None:
    paths = DecodePaths()
    try:
        cols, bad = decode_columns(batch, kind=kind, now=NOW, max_bytes=max_bytes, paths=paths)
        models, model_bad = decode_models(batch, kind=kind, now=NOW, max_bytes=max_bytes)
        ref = COLUMNS_BY_KIND[kind].from_rows(models)
    except Exception:  # the one thing that must never happen; counted, shown
        counts.exceptions += 1
        counts.note(f"{kind}: {traceback.format_exc(limit=4)}")
        return
    n = len(batch)
    counts.messages += n
    counts.accepted += len(ref)
    counts.rejected += len(model_bad)
    counts.isolated += sum(1 for r in bad if r.exception is not None)
    counts.fallback += paths.fallback
    counts.columnar += paths.columnar
    counts.per_message += paths.per_message
    counts.reference += paths.reference
    mine, theirs = _verdicts(bad, n), _verdicts(model_bad, n)
    if len(bad) != len({r.index for r in bad}) or len(cols) + len(bad) != n:
        counts.disagreements += n
        counts.note(f"{kind}: {len(cols)} rows + {len(bad)} rejects for {n} messages")
        return
    rows, ref_rows = iter(_rows(cols)), iter(_rows(ref))
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a != "ok" and a[2] is not None:
            counts.note(f"isolated {kind} #{i}: {a!r:.300}")
        row = next(rows) if a == "ok" else None
        same = a == b and (a != "ok" or row == next(ref_rows))
        if same and alone:
            same = _alone(kind, batch[i], max_bytes) == (a if row is None else row)
        if not same:
            counts.disagreements += 1
            counts.note(f"{kind} #{i}: {a!r:.300} vs {b!r:.300}; message {batch[i]!r:.300}")


def _alone(kind: str, raw: Any, max_bytes: int) -> Any:
    """The reference verdict on one message decoded alone: each message must get the
    same in a batch as on its own (its row, or its reject), whatever its neighbours."""
    models, bad = decode_models([raw], kind=kind, now=NOW, max_bytes=max_bytes)
    if bad:
        return _verdicts(bad, 1)[0]
    return _rows(COLUMNS_BY_KIND[kind].from_rows(models))[0]


def run(total: int, seed: int = 0, progress: Callable[[Counts], None] | None = None) -> Counts:
    counts = Counts()
    for kind, batch, max_bytes in _batches(total, seed):
        # Every 4th batch: also each message alone (a second reference pass costs time).
        _compare(kind, batch, max_bytes, counts, alone=counts.batches % 4 == 0)
        counts.batches += 1
        if progress is not None:
            progress(counts)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = run(args.messages, args.seed)
    result = {"benchmark": "fuzz_decode", "seed": args.seed, **asdict(counts)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if counts.exceptions == 0 and counts.disagreements == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
