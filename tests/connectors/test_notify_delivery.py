"""Dispatcher: ordering, idempotency across restarts, independence under an outage."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from pydantic import SecretStr

from connectors.notify import (
    Dispatcher,
    JsonFileLedger,
    PagerDutyConfig,
    PagerDutyNotifier,
    RateLimit,
    RetryPolicy,
    TokenBucket,
    WebhookConfig,
    WebhookNotifier,
)
from tests.connectors.notify_fakes import (
    FakeClock,
    FakePagerDuty,
    FakeWebhook,
    Reply,
    Seen,
    make_alert,
    note,
    resolved,
)

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"


def _pd(url: str, clock: FakeClock) -> PagerDutyNotifier:
    config = PagerDutyConfig(routing_key=SecretStr(KEY), url=f"{url}/v2/enqueue", timeout_s=2)
    return PagerDutyNotifier("pd", config, clock=clock)


def _hook(url: str, clock: FakeClock) -> WebhookNotifier:
    return WebhookNotifier("hook", WebhookConfig(url=SecretStr(f"{url}/hook")), clock=clock)


def test_trigger_then_resolve_order_kept_through_retries() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        # The trigger meets two failures; the resolve, queued behind it, must still come second.
        pd.plan(Reply(status=500), Reply(status=429, headers={"Retry-After": "2"}))
        async with pd.running() as url:
            dispatcher = Dispatcher(
                [_pd(url, clock)], clock=clock, policy=RetryPolicy(rng=random.Random(0))
            )
            alerts = [make_alert(fingerprint=f"fp{i}") for i in range(3)]
            futures = [dispatcher.submit(note(a, receiver="pd")) for a in alerts]
            futures += [dispatcher.submit(note(resolved(a), receiver="pd")) for a in alerts]
            await asyncio.gather(*futures)
            await dispatcher.close()
        assert pd.invalid == []
        for i in range(3):
            actions = [e["event_action"] for e in pd.events if e["dedup_key"] == f"fp{i}"]
            assert actions == ["trigger", "resolve"]
        assert dispatcher.counts.sent == 6 and dispatcher.counts.retried == 2

    asyncio.run(main())


def test_restart_with_same_ledger_sends_nothing_again(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        ledger_path = tmp_path / "ledger.json"
        alert = make_alert()
        async with pd.running() as url:
            first = Dispatcher([_pd(url, clock)], ledger=JsonFileLedger(ledger_path), clock=clock)
            c1 = await first.dispatch([note(alert, receiver="pd")])
            c2 = await first.dispatch([note(resolved(alert), receiver="pd")])
            await first.close()
            # Kafka redelivers everything after a crash: the new worker must not re-page.
            second = Dispatcher([_pd(url, clock)], ledger=JsonFileLedger(ledger_path), clock=clock)
            c3 = await second.dispatch([note(alert, receiver="pd")])
            c4 = await second.dispatch([note(resolved(alert), receiver="pd")])
            # A new episode of the same fingerprint is a new page.
            later = make_alert(alert_id="a-2", starts_at="2024-05-02T00:00:00Z")
            c5 = await second.dispatch([note(later, receiver="pd")])
            await second.close()
        assert (c1.sent, c2.sent) == (1, 1)
        assert (c3.deduplicated, c4.deduplicated, c3.sent + c4.sent) == (1, 1, 0)
        assert c5.sent == 1
        assert [e["event_action"] for e in pd.events] == ["trigger", "resolve", "trigger"]

    asyncio.run(main())


def test_a_repeat_is_sent_but_a_replayed_message_is_not() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        async with pd.running() as url:
            dispatcher = Dispatcher([_pd(url, clock)], clock=clock)
            first = note(make_alert(), receiver="pd")
            await dispatcher.dispatch([first])
            again = await dispatcher.dispatch([first])
            repeat = await dispatcher.dispatch([note(make_alert(), receiver="pd", sequence=1)])
            await dispatcher.close()
        assert (again.deduplicated, repeat.sent) == (1, 1)
        assert [e["event_action"] for e in pd.events] == ["trigger", "trigger"]

    asyncio.run(main())


def test_ten_minute_outage_delays_only_that_receiver() -> None:
    async def main() -> None:
        clock = FakeClock()
        start = clock.now()
        pd = FakePagerDuty(KEY, clock)
        hook = FakeWebhook(clock)

        def outage(seen: Seen) -> Reply | None:
            return Reply(status=503) if clock.now() < start + 600 else None

        pd.rule = outage
        letters: list[object] = []
        async with pd.running() as pd_url, hook.running() as hook_url:
            dispatcher = Dispatcher(
                [_pd(pd_url, clock), _hook(hook_url, clock)],
                clock=clock,
                policy=RetryPolicy(rng=random.Random(7)),
                on_dead_letter=letters.append,
            )
            futures = []
            for i in range(5):
                alert = make_alert(fingerprint=f"fp{i}")
                futures += [dispatcher.submit(note(alert, receiver=r)) for r in ("pd", "hook")]
            # The webhook is done with all five while PagerDuty is still down.
            hook_futures = futures[1::2]
            await asyncio.gather(*hook_futures)
            assert len(hook.requests) == 5
            assert all(s.at < start + 600 for s in hook.requests)
            await dispatcher.drain()
            await dispatcher.close()
        assert letters == []
        assert len(pd.events) == 5
        assert [e["dedup_key"] for e in pd.events] == [f"fp{i}" for i in range(5)]
        assert min(s.at for s in pd.requests if not s.errors and s.at >= start + 600) >= start + 600
        counts = dispatcher.counts
        assert counts.sent == 10 and counts.dead_lettered == 0 and counts.retried >= 5

    asyncio.run(main())


def test_permanent_failure_dead_letters_one_receiver_not_the_other() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        hook = FakeWebhook(clock)
        hook.plan(Reply(status=400, body="bad payload"))
        letters: list[object] = []
        async with pd.running() as pd_url, hook.running() as hook_url:
            dispatcher = Dispatcher(
                [_pd(pd_url, clock), _hook(hook_url, clock)],
                clock=clock,
                on_dead_letter=letters.append,
            )
            alert = make_alert()
            counts = await dispatcher.dispatch([note(alert, receiver=r) for r in ("pd", "hook")])
            await dispatcher.close()
        assert (counts.sent, counts.dead_lettered) == (1, 1)
        (letter,) = letters
        assert letter.receiver == "hook" and letter.http_status == 400  # type: ignore[attr-defined]
        assert "bad payload" in letter.reason  # type: ignore[attr-defined]

    asyncio.run(main())


def test_unknown_routed_receiver_is_dead_lettered() -> None:
    async def main() -> None:
        dispatcher = Dispatcher([])
        counts = await dispatcher.dispatch([note(make_alert(), receiver="nobody")])
        assert counts.dead_lettered == 1

    asyncio.run(main())


def test_token_bucket_paces_to_the_documented_rate() -> None:
    async def main() -> None:
        clock = FakeClock()
        bucket = TokenBucket(RateLimit(rate_per_s=2.0, burst=20), clock)
        start = clock.now()
        for _ in range(140):
            await bucket.acquire()
        # 20 at once, then 2 per second: 120 more take 60 s.
        assert clock.now() - start == __import__("pytest").approx(60.0, abs=0.01)

    asyncio.run(main())


def test_rate_limit_applies_inside_the_dispatcher() -> None:
    async def main() -> None:
        clock = FakeClock()
        hook = FakeWebhook(clock)
        async with hook.running() as url:
            notifier = WebhookNotifier(
                "hook", WebhookConfig(url=SecretStr(f"{url}/h"), rate_per_s=1, burst=1), clock=clock
            )
            dispatcher = Dispatcher([notifier], clock=clock)
            for i in range(4):
                dispatcher.submit(note(make_alert(fingerprint=f"f{i}"), receiver="hook"))
            await dispatcher.drain()
            await dispatcher.close()
        times = [s.at - hook.requests[0].at for s in hook.requests]
        assert times == [0.0, 1.0, 2.0, 3.0]

    asyncio.run(main())
