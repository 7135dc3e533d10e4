"""What every notifier replica must know of the others: deliveries done and Slack messages.

Replicas share one consumer group (every alert on one partition: ``topic_key``); after
a rebalance (or a replica killed mid-delivery) the new owner re-reads the uncommitted
alerts. It
must not page again for what the old owner already delivered, and it must edit the
Slack message the old owner posted instead of posting a second one. So each replica
publishes its ledger records (``ledger:<key>``) and Slack message ids
(``slack:<receiver>|<group key>``) to the compacted silences topic, which every replica
already reads whole at start and then follows; the local files stay as they were
(a lone replica restarting needs no broker round trip to know its own deliveries).

A record written just before its writer died can be missed by the new owner if it
arrives after the re-read: that is at-least-once's window (PagerDuty merges by
``dedup_key``; Slack may show a duplicate). Records older than ``retention_s`` are
tombstoned by the prune.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from connectors.notify.stores import Ledger, MessageStore

log = logging.getLogger("llmwatch.notify")

LEDGER_PREFIX = "ledger:"
SLACK_PREFIX = "slack:"
Publish = Callable[[str, bytes | None], None]


class SharedState:
    """The fold of other replicas' records; ``publish`` writes ours (never blocks)."""

    def __init__(self, publish: Publish, retention_s: float = 7 * 86400.0) -> None:
        self.publish = publish
        self.retention_s = retention_s
        self.ledger: dict[str, tuple[str, float]] = {}
        self.messages: dict[str, tuple[str, str]] = {}
        self.skipped = 0  # records that did not parse, logged and skipped

    @staticmethod
    def owns(key: str) -> bool:
        return key.startswith((LEDGER_PREFIX, SLACK_PREFIX))

    def apply(self, key: str, value: bytes | None) -> None:
        try:
            if key.startswith(LEDGER_PREFIX):
                k = key.removeprefix(LEDGER_PREFIX)
                if value is None:
                    self.ledger.pop(k, None)
                else:
                    d = json.loads(value)
                    self.ledger[k] = (str(d["outcome"]), float(d["at"]))
            elif key.startswith(SLACK_PREFIX):
                k = key.removeprefix(SLACK_PREFIX)
                if value is None:
                    self.messages.pop(k, None)
                else:
                    d = json.loads(value)
                    self.messages[k] = (str(d["channel"]), str(d["ts"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than json.loads' stack. The topic is
            # compacted, so a record that raised here would stop every start-up.
            self.skipped += 1
            log.error("notifier state: skipped record %r: %s", key[:80], type(exc).__name__)

    def record(self, key: str, outcome: str) -> None:
        now = time.time()
        self.ledger[key] = (outcome, now)
        body = json.dumps({"outcome": outcome, "at": now}).encode()
        self.publish(LEDGER_PREFIX + key, body)

    def message(self, key: str, pair: tuple[str, str] | None) -> None:
        if pair is None:
            self.messages.pop(key, None)
            self.publish(SLACK_PREFIX + key, None)
        else:
            self.messages[key] = pair
            body = json.dumps({"channel": pair[0], "ts": pair[1]}).encode()
            self.publish(SLACK_PREFIX + key, body)

    def prune(self, now: float) -> list[str]:
        """Ledger records past retention: forgotten here, tombstoned on the topic."""
        old = [k for k, (_, at) in self.ledger.items() if at < now - self.retention_s]
        for k in old:
            del self.ledger[k]
            self.publish(LEDGER_PREFIX + k, None)
        return old


class SharedLedger:
    """The local ledger, plus every replica's records."""

    def __init__(self, local: Ledger, shared: SharedState) -> None:
        self.local = local
        self._shared = shared

    def seen(self, key: str) -> bool:
        return self.local.seen(key) or key in self._shared.ledger

    def record(self, key: str, outcome: str) -> None:
        self.local.record(key, outcome)  # raises OSError on a full disk: the lane retries
        self._shared.record(key, outcome)


class SharedMessageStore:
    """One receiver's Slack message per group: the local file, plus every replica's."""

    def __init__(self, receiver: str, local: MessageStore, shared: SharedState) -> None:
        self._receiver = receiver
        self._local = local
        self._shared = shared

    def _key(self, group_key: str) -> str:
        return f"{self._receiver}|{group_key}"

    def get(self, fingerprint: str) -> tuple[str, str] | None:
        found = self._local.get(fingerprint)
        return found if found is not None else self._shared.messages.get(self._key(fingerprint))

    def put(self, fingerprint: str, channel: str, ts: str) -> None:
        self._local.put(fingerprint, channel, ts)
        self._shared.message(self._key(fingerprint), (channel, ts))

    def delete(self, fingerprint: str) -> None:
        self._local.delete(fingerprint)
        self._shared.message(self._key(fingerprint), None)
