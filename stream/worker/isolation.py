"""When the engine raises on a batch: retry it once, then bisect to the rows that fail.

Detectors cannot roll back an update, and an engine that raised may have fed the
batch to some detectors already. So before every retry the partition's engine is
rebuilt (``EnginePool.rebuild``: last snapshot plus the steps that succeeded since),
and each row ends up in exactly one successful step or in the dead-letter topic,
never counted twice. A batch that fails on the rebuilt engine is cut in halves, in
order (left before right, so event time still moves forward), and each half that
fails is rebuilt and cut again, down to single rows: k poison rows in a batch of n
cost about 2k log2(n) engine steps plus one rebuild per failed step, and only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.brief import brief_exception
from schemas.columns import Columns
from schemas.models import Alert
from stream.worker.engines import EnginePool


@dataclass(frozen=True, slots=True)
class Poison:
    """One row the engine fails on by itself: its position in the batch, and why."""

    row: int
    exception: str  # the exception's type name
    reason: str


@dataclass(slots=True)
class Isolated:
    alerts: list[Alert] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    retried_ok: bool = False  # the one retry of the whole batch succeeded
    steps: int = 0  # engine steps tried after the first failure
    dirty: bool = True  # the pool's engine may hold part of a failed step


def isolate(pool: EnginePool, partition: int, batch: Columns) -> Isolated:
    """Process ``batch`` on a rebuilt engine; rows that still fail come back as poison.

    The caller's ``engine.process(batch)`` raised; the pool's engine is rebuilt here
    and left clean (every successful step in it, nothing of a failed one).
    """
    out = Isolated()
    err = _step(pool, partition, batch, out)
    if err is None:
        out.retried_ok = True
    else:
        _bisect(pool, partition, batch, 0, len(batch), err, out)
    if out.dirty:
        pool.rebuild(partition)
    return out


def _step(pool: EnginePool, partition: int, part: Columns, out: Isolated) -> Exception | None:
    """Process ``part`` (rebuilding first after a failure); None when it succeeded."""
    engine = pool.rebuild(partition) if out.dirty else pool.engines[partition]
    out.steps += 1
    try:
        step = engine.process(part)
    except Exception as exc:
        out.dirty = True
        return exc
    out.dirty = False
    pool.journal.processed(partition, part)
    out.alerts.extend(step.alerts)
    return None


def _bisect(
    pool: EnginePool,
    partition: int,
    batch: Columns,
    lo: int,
    hi: int,
    exc: Exception,
    out: Isolated,
) -> None:
    """Rows [lo, hi) raised ``exc`` together on the state before them: find the rows
    that fail alone, and process the others."""
    if hi - lo == 1:
        out.poison.append(Poison(lo, type(exc).__name__, brief_exception(exc)))
        return
    mid = (lo + hi) // 2
    for a, b in ((lo, mid), (mid, hi)):
        err = _step(pool, partition, batch.take(slice(a, b)), out)
        if err is not None:
            _bisect(pool, partition, batch, a, b, err, out)
