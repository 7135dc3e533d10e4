"""The notifier worker (``llmwatch notify``): alerts topic -> receivers, silences, acks, API.

Names load lazily, so ``llmwatch silence`` (which needs only the small HTTP client)
does not import Kafka and aiohttp on every run of the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import NotifyConfig, NotifyConfigError, default_config, load_config, parse_config
    from .service import NotifierService
    from .web import NotifierAPI, serve

_WHERE = {
    "NotifyConfig": "config",
    "NotifyConfigError": "config",
    "default_config": "config",
    "load_config": "config",
    "parse_config": "config",
    "NotifierService": "service",
    "NotifierAPI": "web",
    "serve": "web",
}

__all__ = [
    "NotifierAPI",
    "NotifierService",
    "NotifyConfig",
    "NotifyConfigError",
    "default_config",
    "load_config",
    "parse_config",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
