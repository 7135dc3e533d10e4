"""The one detector protocol, and the finding every detector reports.

Detectors score; they do not decide. Each ``update`` returns a score in [0, 1]
for every input row (0.5 means "exactly at this detector's configured
threshold") and a list of findings: one per series whose state is anomalous
after the batch, plus one recovery finding (``anomalous=False``) the first time
a previously anomalous series looks normal again. The alert lifecycle turns
findings into alerts with its own fire/resolve thresholds and timers.
"""

from __future__ import annotations

import abc
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from typing_extensions import TypeVar

from detectors.registry import SeriesRegistry, SeriesState
from schemas.columns import Columns
from schemas.durations import parse_duration

C = TypeVar("C", bound=Columns)


class DetectorConfig(BaseModel):
    """Base of every detector's configuration section. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="Run this detector; false leaves its findings and state out entirely."
    )

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: ValidationInfo) -> Any:
        # Every *_s field is seconds; "90s", "1h30m", "2d" go through the one parser.
        if isinstance(value, str) and (info.field_name or "").endswith("_s"):
            return parse_duration(value)
        return value


# A detector's own config class; ``Detector[Cols]`` alone means the base config.
K = TypeVar("K", bound=DetectorConfig, default=DetectorConfig)


SNAPSHOT_FORMAT = 1
# Turns a detector's snapshot payload ({"params": ..., "state": ...}) of state version v
# into one of version v + 1 (registered as ``state_migrations[v]``).
Migration = Callable[[dict[str, Any]], dict[str, Any]]


class StateVersionError(ValueError):
    """A snapshot's detector state has a version this release cannot read or migrate."""

    def __init__(self, detector: str, found: int, wanted: int) -> None:
        how = "is newer than this release" if found > wanted else "has no migration"
        super().__init__(
            f"detector {detector!r}: snapshot state version {found} {how} "
            f"(this release reads version {wanted})"
        )
        self.detector = detector
        self.found = found
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's view of one series at one moment (event time, epoch seconds)."""

    detector: str
    kind: str  # what is wrong, e.g. "latency.ttft_p99", "error_rate", "gpu.xid"
    series: Mapping[str, str]
    ts: float
    score: float  # [0, 1]; 0.5 == at the detector's threshold
    anomalous: bool
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    severity: str = "warning"  # critical | error | warning | info
    explanation: str = ""
    # Labels of the thing that is broken, for inhibition (e.g. {"host": "h1"}).
    scope: Mapping[str, str] = field(default_factory=dict)
    # The series' sampling interval as the detector has learned it, in seconds (None:
    # not known). The lifecycle counts samples with it from an alert's first finding:
    # before, it learns the interval from the gap to the next one.
    interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class DetectorOutput:
    scores: npt.NDArray[np.float64]  # one per input row, in [0, 1]
    findings: list[Finding]


def squash(z: npt.ArrayLike, threshold: float) -> npt.NDArray[np.float64]:
    """Map a non-negative anomaly statistic to [0, 1) with 0.5 at ``threshold``."""
    arr = np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=1e12, neginf=0.0)
    arr = np.maximum(arr, 0.0)
    out: npt.NDArray[np.float64] = arr / (arr + threshold)
    return out


class Detector(abc.ABC, Generic[C, K]):
    """Base of every detector. Subclasses are found automatically by the contract test.

    A detector is pure: no I/O, no clock other than the event times it is given,
    no randomness other than its own seeded generator.
    """

    name: ClassVar[str]
    consumes: ClassVar[type[Columns]]
    Config: ClassVar[type[DetectorConfig]] = DetectorConfig
    # True when ``update`` reports what each row alone would (a finding per row that is
    # anomalous, one recovery, each at its row's ``ts``), however rows are batched: the
    # engine then hands findings to the lifecycle at their own times, and replay feeds
    # such detectors whole files in large batches instead of a slice of time at a time.
    row_findings: ClassVar[bool] = False
    # Bump when ``state()`` changes layout or meaning, and register a migration from the
    # previous version in ``state_migrations`` (version -> function) where one exists.
    # Without one, an older snapshot starts this detector fresh (a warm-up, see
    # docs/operating.md "Upgrades"); the other detectors keep what they learned.
    state_version: ClassVar[int] = 1
    state_migrations: ClassVar[Mapping[int, Migration]] = {}
    # Further batch types it reads besides ``consumes``: a join of topics keyed alike
    # (feedback joins the inference events of the same model version). ``update`` then
    # takes any of them; the engine and the warm-up route batches by ``reads``.
    joins: ClassVar[tuple[type[Columns], ...]] = ()

    @classmethod
    def reads(cls, kind: type[Columns]) -> bool:
        """Whether batches of ``kind`` go to this detector."""
        return issubclass(kind, (cls.consumes, *cls.joins))

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.Config()
        if not isinstance(cfg, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}")
        if overrides:
            cfg = self.Config.model_validate({**cfg.model_dump(), **overrides})
        # ``Config`` is the class behind ``K`` (a ClassVar cannot name a type variable).
        self.config: K = cast(K, cfg)

    @property
    def cfg(self) -> K:
        return self.config

    def finding(
        self,
        kind: str,
        series: Mapping[str, str],
        ts: float,
        score: float,
        anomalous: bool,
        *,
        severity: str = "warning",
        explanation: str = "",
        observed: float | None = None,
        expected: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
        scope: Mapping[str, str] | None = None,
    ) -> Finding:
        """This detector's finding: ``severity`` is the anomalous one (a recovery is
        "info"); the scope is the series' labels unless given."""
        return Finding(
            detector=self.name,
            kind=kind,
            series=series,
            ts=ts,
            score=score,
            anomalous=anomalous,
            observed=observed,
            expected=expected,
            lower=lower,
            upper=upper,
            severity=severity if anomalous else "info",
            explanation=explanation,
            scope=dict(series) if scope is None else dict(scope),
        )

    @abc.abstractmethod
    def update(self, batch: C) -> DetectorOutput:
        """Learn from and score one batch. Must not mutate ``batch``."""

    def tick(self, now: float) -> list[Finding]:
        """Let event time pass without data (absence detectors override this)."""
        return []

    def next_deadline(self, now: float) -> float:
        """The earliest event time at which ``tick`` may report something it did not
        report at ``now`` (a silence begins, a bin closes); +inf when nothing can change
        without data. The engine ticks at these times, not every second, so a detector
        that overrides ``tick`` overrides this too; one that does not is ticked every
        second of event time, as before."""
        if type(self).tick is Detector.tick:
            return float("inf")
        return float(now) + 1.0

    def params(self) -> dict[str, Any]:
        """Constructor arguments, so that ``clone`` and snapshots can rebuild the detector."""
        return self.config.model_dump()

    def clone(self) -> Self:
        """A fresh detector with the same parameters and no learned state."""
        return type(self)(**self.params())

    def state(self) -> dict[str, Any]:
        """Learned state; the default covers detectors whose whole state is ``__dict__``."""
        return dict(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def snapshot(self) -> bytes:
        # Snapshots are written to and read from llmwatch's own changelog topic or
        # state files only; pickle is what River models support.
        payload = {
            "format": SNAPSHOT_FORMAT,
            "name": self.name,
            "params": self.params(),
            "state": self.state(),
            "state_version": self.state_version,
        }
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, data: bytes) -> Self:
        payload = pickle.loads(data)  # our own state only, see snapshot()
        if payload.get("format") != SNAPSHOT_FORMAT or payload.get("name") != cls.name:
            raise ValueError(
                f"snapshot is for {payload.get('name')!r} format {payload.get('format')}, "
                f"not {cls.name!r} format {SNAPSHOT_FORMAT}"
            )
        payload = cls.migrate(payload)
        det = cls(**payload["params"])
        det.set_state(payload["state"])
        return det

    @classmethod
    def migrate(cls, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload brought to ``state_version`` through the registered migrations;
        raises StateVersionError where a step is missing. Snapshots written before
        versions existed are version 1."""
        found = int(payload.get("state_version", 1))
        version = found
        while version < cls.state_version:
            step = cls.state_migrations.get(version)
            if step is None:
                raise StateVersionError(cls.name, found, cls.state_version)
            payload = step(payload)
            version += 1
        if version != cls.state_version:
            raise StateVersionError(cls.name, found, cls.state_version)
        return payload

    def active_series(self) -> int:
        """Series with learned state (the ``llmwatch_active_series`` gauge): the size of
        every registry among the detector's attributes. Detectors that keep registries
        inside per-level objects override this."""
        return sum(
            len(v) for v in vars(self).values() if isinstance(v, SeriesRegistry | SeriesState)
        )

    @property
    def bytes_per_series(self) -> float:
        """Approximate learned-state bytes per active series (for memory budgets)."""
        return 0.0
