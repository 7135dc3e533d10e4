"""Detector configuration: one section per detector, assembled from the detectors themselves.

Each detector class declares its own ``Config`` (a ``DetectorConfig``); this module
finds every detector in the package and builds one pydantic model with a section
per detector name, so the config file, its JSON Schema and its defaults can never
disagree with the code. No file at all means every default.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

import detectors
from detectors.base import Detector

_NOT_DETECTOR_MODULES = frozenset({"base", "config", "kernels", "registry"})


def _all_subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


@cache
def detector_classes() -> dict[str, type[Detector[Any]]]:
    """Every concrete detector in the ``detectors`` package, by its ``name``."""
    for info in pkgutil.iter_modules(detectors.__path__):
        if info.name not in _NOT_DETECTOR_MODULES and not info.name.startswith("_"):
            importlib.import_module(f"detectors.{info.name}")
    found: dict[str, type[Detector[Any]]] = {}
    for cls in _all_subclasses(Detector):
        name = getattr(cls, "name", None)
        if name is None or getattr(cls, "__abstractmethods__", None):
            continue
        if name in found and found[name] is not cls:
            raise RuntimeError(f"two detectors are named {name!r}: {found[name]} and {cls}")
        found[name] = cls
    return dict(sorted(found.items()))


@cache
def detectors_config_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (cls.Config, cls.Config()) for name, cls in detector_classes().items()
    }
    model: type[BaseModel] = create_model(
        "DetectorsConfig",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **fields,
    )
    return model


def build_detectors(config: BaseModel | None = None) -> list[Detector[Any]]:
    """Instantiate every enabled detector from a ``DetectorsConfig`` (defaults if None)."""
    cfg = config if config is not None else detectors_config_model()()
    out: list[Detector[Any]] = []
    for name, cls in detector_classes().items():
        section = getattr(cfg, name)
        if section.enabled:
            out.append(cls(section))
    return out
