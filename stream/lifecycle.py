"""The alert lifecycle: findings in, firing/resolved alert events out (rule evaluation).

State machine per fingerprint (labels = alertname + detector + series + scope):

* a finding with ``anomalous`` and score >= ``fire_threshold`` opens a *pending* alert;
* pending becomes *firing* once the condition has not cleared for ``for_s``;
* the condition clears on a recovery finding or a score < ``resolve_threshold``
  (hysteresis: scores in between keep whatever state the alert has);
* a cleared firing alert resolves after ``keep_firing_for_s``, unless it is flapping
  (``flap_threshold`` starts within ``flap_window_s``), in which case it is held
  firing until the old starts age out of the window;
* a pending/firing alert whose series stops reporting while not cleared resolves
  after ``resolve_timeout_s`` (annotation ``resolved_reason=timeout``);
* every duration also counts samples (``for_samples`` ...): see ``lifecycle_config``;
* a firing alert's severity, score, observed, bounds and explanation are those of the
  most anomalous finding before it fired (the earliest of equals), fixed when it fires,
  so its resolve renders and routes as its firing did.

Time is event-driven: each alert has one due time (``AlertState`` plus its rule give
it), ``next_deadline`` is the earliest, and ``observe``/``advance`` act only on what is
due, so calling them once per deadline gives what calling them every second would.

Only transitions are events. The worker evaluates rules; the notifier dispatches
(stream/alerting: route, group, inhibit at group flush, silence, ack, receivers), as
Prometheus and Alertmanager split it. Inhibition is the notifier's alone (its
``inhibit_rules``): the worker neither evaluates nor annotates it, so one set of rules
decides what is held and what the console and history say held it.

Time is event time, passed in as ``now`` (epoch seconds); it never runs backwards here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from detectors.base import Finding
from schemas.models import Alert, AlertStatus
from stream.alert_state import AlertState, Condition
from stream.alerting.labels import finding_labels, fingerprint
from stream.lifecycle_config import AlertRule, LifecycleConfig

SNAPSHOT_FORMAT = 1
_ID_CACHE_SIZE = 100_000
_HOUSEKEEPING_S = 60.0  # prune flap history at least this often (event time)


class Lifecycle:
    def __init__(self, config: LifecycleConfig | None = None) -> None:
        self.config = config if config is not None else LifecycleConfig()
        self._now = float("-inf")
        self._states: dict[str, AlertState] = {}
        # fingerprint -> recent firing start times, and the last alert id (kept after
        # resolve so flapping and alert_id uniqueness survive between instances).
        self._starts: dict[str, list[float]] = {}
        self._last_id: dict[str, str] = {}
        self._rules: dict[str, AlertRule] = {}
        self._ids: dict[tuple[Any, ...], tuple[dict[str, str], str]] = {}
        # fingerprint -> learned sampling interval, kept between episodes (bounded).
        self._intervals: dict[str, float] = {}
        self._soonest = float("inf")  # min due time over the states
        # fingerprint -> when its last episode resolved (bounded): no onset before it.
        self._ended: dict[str, float] = {}
        self._kept = float("-inf")  # last housekeeping

    # -- public API ---------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._now

    def observe(self, findings: Sequence[Finding], now: float, sampled: bool = True) -> list[Alert]:
        """Take a batch of findings at event time ``now``; return the transition events.
        ``sampled=False``: the findings come from ticks (absence checks), not from data,
        so they are no samples for the sample-counted rules."""
        now = self._clock(now)
        for f in findings:
            self._take(f, now, sampled)
        return self._sweep(now)

    def advance(self, now: float) -> list[Alert]:
        """Let event time pass without findings (for, keep_firing_for, timeouts, flaps)."""
        return self._sweep(self._clock(now))

    def next_deadline(self) -> float:
        """The earliest event time at which an alert changes state without a finding."""
        return self._soonest

    def active_alerts(self, now: float | None = None) -> list[Alert]:
        """Every firing alert as it would be published now (annotations current)."""
        t = self._now if now is None else max(now, self._now)
        return [
            self._render(st, AlertStatus.FIRING, t)
            for _, st in sorted(self._states.items())
            if st.state == "firing"
        ]

    def pending(self) -> list[str]:
        return sorted(fp for fp, st in self._states.items() if st.state == "pending")

    def pending_states(self) -> list[AlertState]:
        """The pending alerts themselves (never events: only transitions are), for the
        worker's /api/pending; read-only by convention."""
        return [st for _, st in sorted(self._states.items()) if st.state == "pending"]

    # -- state machine ------------------------------------------------------------
    def _clock(self, now: float) -> float:
        self._now = max(self._now, float(now))
        return self._now

    def _rule(self, detector: str) -> AlertRule:
        rule = self._rules.get(detector)
        if rule is None:
            rule = self._rules[detector] = self.config.rule_for(detector)
        return rule

    def _take(self, f: Finding, now: float, sampled: bool = True) -> None:
        rule = self._rule(f.detector)
        score = f.score if f.score == f.score else 0.0  # NaN reads as "no evidence"
        cond: Condition
        if not f.anomalous or score < rule.resolve_threshold:
            cond = "clear"
        elif score >= rule.fire_threshold:
            cond = "hot"
        else:
            cond = "band"
        labels, fp = self._identity(f)
        # The finding's own event time: the clock may be ahead of its series (another
        # topic of the partition was read further), and a sample or an onset is when
        # the series showed it, not when the lifecycle heard of it.
        # Not before this fingerprint's last episode ended: alert ids (fingerprint plus
        # onset) stay unique however old a finding is.
        at = max(f.ts if f.ts < now else now, self._ended.get(fp, -math.inf))
        st = self._states.get(fp)
        if st is None:
            if cond != "hot":
                return
            # No view yet (score -inf): update_from below takes this finding's.
            st = AlertState(
                fp, labels, f.detector, f.kind, "pending", at, now, now, cond, -math.inf
            )
            st.interval = self._intervals.get(fp, math.nan)
            if math.isnan(st.interval) and f.interval_s is not None and f.interval_s > 0.0:
                # The detector knows the series' interval: without it a pending alert
                # on a series slower than resolve_timeout_s times out before its second
                # sample, and never fires.
                st.interval = f.interval_s
            if sampled:
                st.sample(at)
            self._states[fp] = st
        elif cond == "clear" and st.state == "pending":
            del self._states[fp]  # never fired: nothing to tell anyone
            return
        elif sampled and st.sample(at) and cond != "clear":
            st.samples += 1
        st.last_seen = now
        if cond == "clear" and st.condition != "clear":
            st.cleared_at = now  # keep_firing_for counts from here
        st.condition = cond
        if cond != "clear":
            st.last_active = now
            st.update_from(f, score)
        self._soonest = min(self._soonest, self._due(st))

    def _identity(self, f: Finding) -> tuple[dict[str, str], str]:
        # Detectors report the same few thousand series over and over: hashing each
        # label set once keeps fingerprinting off the per-finding cost.
        key = (f.detector, f.kind, tuple(f.series.items()), tuple(f.scope.items()))
        hit = self._ids.get(key)
        if hit is None:
            if len(self._ids) >= _ID_CACHE_SIZE:
                self._ids.clear()
            labels = finding_labels(f)
            hit = self._ids[key] = (labels, fingerprint(labels))
        return hit

    def _stale_at(self, st: AlertState) -> float:
        """When a condition that has not cleared times out for want of findings."""
        cfg = self.config
        return st.last_seen + st.span(cfg.resolve_timeout_s, cfg.resolve_timeout_samples)

    def _due(self, st: AlertState) -> float:
        """The next event time at which ``st`` changes state without a finding."""
        rule = self._rule(st.detector)
        if st.condition != "clear":
            stale = self._stale_at(st)
            if st.state == "firing" or st.samples < rule.for_samples:
                return stale  # a pending alert short of samples waits for data
            return min(stale, st.active_since + rule.for_s)
        if st.state == "pending":
            return math.inf
        cleared = st.cleared_at + st.span(rule.keep_firing_for_s, rule.keep_firing_for_samples)
        if not st.flapping:
            return cleared
        return max(cleared, self._flap_ends(st))

    def _flap_ends(self, st: AlertState) -> float:
        """When fewer than ``flap_threshold`` of the alert's starts lie in the window."""
        cfg = self.config
        starts = sorted(self._starts.get(st.fingerprint, ()))
        if len(starts) < cfg.flap_threshold:
            return -math.inf
        window = st.span(cfg.flap_window_s, cfg.flap_window_samples)
        return starts[len(starts) - cfg.flap_threshold] + window

    def _sweep(self, now: float) -> list[Alert]:
        if now < self._soonest:
            if now - self._kept >= _HOUSEKEEPING_S:
                self._housekeeping(now)
            return []
        cfg = self.config
        fired: list[AlertState] = []
        resolved: list[tuple[AlertState, str]] = []
        for fp in sorted(self._states):
            st = self._states[fp]
            if self._due(st) > now:
                continue
            stale = st.condition != "clear" and now >= self._stale_at(st)
            if st.state == "pending":
                if stale:
                    del self._states[fp]
                else:
                    self._fire(st, now)
                    fired.append(st)
            elif stale:
                resolved.append((st, "timeout"))
            elif len(self._recent_starts(st, now)) >= cfg.flap_threshold:
                st.flapping = True  # held firing until the old starts age out
            else:
                resolved.append((st, "recovered"))
        for st, _ in resolved:
            del self._states[st.fingerprint]
            self._remember_interval(st)
            if len(self._ended) >= _ID_CACHE_SIZE:
                self._ended.clear()
            self._ended[st.fingerprint] = now
        self._soonest = min((self._due(st) for st in self._states.values()), default=math.inf)
        events: list[Alert] = []
        for st in fired:
            alert = self._render(st, AlertStatus.FIRING, now)
            events.append(alert)
        for st, why in resolved:
            alert = self._render(st, AlertStatus.RESOLVED, now, {"resolved_reason": why})
            events.append(alert)
        self._housekeeping(now)
        return events

    def _remember_interval(self, st: AlertState) -> None:
        if math.isnan(st.interval):
            return
        if len(self._intervals) >= _ID_CACHE_SIZE:
            self._intervals.clear()
        self._intervals[st.fingerprint] = st.interval

    def _fire(self, st: AlertState, now: float) -> None:
        st.state = "firing"
        starts = self._recent_starts(st, now)
        starts.append(now)
        self._starts[st.fingerprint] = starts
        alert_id = f"{st.fingerprint}-{round(st.active_since * 1000)}"
        last = self._last_id.get(st.fingerprint, "")
        if last == alert_id or last.startswith(alert_id + "-"):
            n = int(last.rsplit("-", 1)[1]) + 1 if last != alert_id else 1
            alert_id = f"{alert_id}-{n}"
        st.alert_id = alert_id
        self._last_id[st.fingerprint] = alert_id

    def _recent_starts(self, st: AlertState, now: float) -> list[float]:
        cfg = self.config
        horizon = now - st.span(cfg.flap_window_s, cfg.flap_window_samples)
        return [t for t in self._starts.get(st.fingerprint, ()) if t > horizon]

    def _housekeeping(self, now: float) -> None:
        self._kept = now
        cfg = self.config
        for fp in list(self._starts):
            st = self._states.get(fp)
            interval = self._intervals.get(fp, math.nan) if st is None else st.interval
            window = cfg.flap_window_s
            if not math.isnan(interval):
                window = max(window, cfg.flap_window_samples * interval)
            recent = [t for t in self._starts[fp] if t > now - window]
            if recent:
                self._starts[fp] = recent
            elif fp not in self._states:
                del self._starts[fp]
                # Past the flap window the clock has moved on, so ids cannot collide.
                self._last_id.pop(fp, None)

    def _render(
        self, st: AlertState, status: AlertStatus, now: float, extra: dict[str, str] | None = None
    ) -> Alert:
        notes: dict[str, str] = {}
        if st.flapping:
            notes["flapping"] = "true"
        notes.update(extra or {})
        return st.to_alert(status, now, self._rule(st.detector), notes)

    # -- persistence --------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state as JSON (orjson): alerts and flap history."""
        # Pruning runs now and then, not on every call; a snapshot is pruned, so two
        # lifecycles in the same state write the same bytes.
        self._housekeeping(self._now)
        payload: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "now": self._now if self._now != float("-inf") else None,
            "states": [self._states[fp].to_dict() for fp in sorted(self._states)],
            "starts": self._starts,
            "last_id": self._last_id,
            "intervals": self._intervals,
            "ended": self._ended,
            # When flap history was last pruned: a restored lifecycle prunes on the same
            # schedule, so it holds exactly what the original does (pruning is lazy).
            "kept": self._kept if math.isfinite(self._kept) else None,
        }
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def restore(cls, data: bytes, config: LifecycleConfig | None = None) -> Lifecycle:
        payload = orjson.loads(data)
        if payload.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"lifecycle snapshot format {payload.get('format')!r} is not {SNAPSHOT_FORMAT}"
            )
        lc = cls(config)
        lc._now = float("-inf") if payload["now"] is None else float(payload["now"])
        lc._states = {d["fingerprint"]: AlertState.from_dict(d) for d in payload["states"]}
        lc._starts = {fp: [float(t) for t in ts] for fp, ts in payload["starts"].items()}
        lc._last_id = dict(payload["last_id"])
        lc._intervals = {fp: float(v) for fp, v in payload.get("intervals", {}).items()}
        lc._ended = {fp: float(v) for fp, v in payload.get("ended", {}).items()}
        kept = payload.get("kept")
        lc._kept = float("-inf") if kept is None else float(kept)
        lc._soonest = min((lc._due(st) for st in lc._states.values()), default=math.inf)
        # Older snapshots also hold "store" (silences) and "groups": the notifier's now.
        return lc
