"""The worker's logging set-up: the configured level holds after Faust configures logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from stream.commands.worker import make_worker


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_worker_keeps_root_logger_at_the_configured_level(root_logging: None) -> None:
    app = faust.App("llmwatch-test-logging", broker="memory://", store="memory://")
    worker = make_worker(app, "warn")
    worker._setup_logging()  # what execute_from_commandline does first
    root = logging.getLogger()
    assert root.getEffectiveLevel() == logging.WARNING
    # Debug calls (aiokafka makes several per fetch) must not even build a record.
    assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)


def test_faust_alone_would_turn_debug_on(root_logging: None) -> None:
    # The reason make_worker drops the spinner; if Faust stops doing this, the
    # workaround can go.
    app = faust.App("llmwatch-test-logging-2", broker="memory://", store="memory://")
    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker._setup_logging()
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
