"""The llmwatch config file: detector sections and the alert lifecycle, in YAML or TOML.

No file means every default. A bad value fails at load with the dotted path of
the field, e.g. ``detectors.latency.half_life_s: Input should be greater than 0``.
``dump_config`` writes YAML that ``load_config`` reads back to an equal config.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.config import detectors_config_model
from stream.lifecycle_config import IGNORED, LifecycleConfig

log = logging.getLogger(__name__)

DetectorsConfig = detectors_config_model()


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names the field."""


class LlmwatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)  # type: ignore[valid-type]
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)


def _describe(exc: ValidationError, source: str) -> str:
    """One line per problem, each naming its dotted field path; no values, no links."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: {str(err['msg']).removeprefix('Value error, ')}")
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} problems:\n  " + "\n  ".join(lines)


def parse_config(data: Any, source: str = "config") -> LlmwatchConfig:
    """Validate an already-parsed mapping (e.g. from a test or the tuner)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    try:
        config = LlmwatchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    for what in config.lifecycle.ignored():
        # Loud, not fatal: an upgrade must not stop a worker over a setting it outgrew.
        log.warning("%s: ignored setting %s", source, what)
    return config


def load_config(path: str | Path | None = None) -> LlmwatchConfig:
    """Read a .yaml/.yml or .toml config file; ``None`` gives every default."""
    if path is None:
        return LlmwatchConfig()
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"{p}: config files are .yaml, .yml or .toml, not {suffix or 'bare'}")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: not valid {suffix[1:].upper()}: {exc}") from None
    return parse_config(data, str(p))


def config_data(config: LlmwatchConfig) -> dict[str, Any]:
    """``config`` as plain data, every field written out except the settings nothing
    reads any more: parsed again, it validates without warning about them (they were
    warned about once, when the file that set them was loaded)."""
    data = config.model_dump(mode="json")
    for name in IGNORED:
        data["lifecycle"].pop(name, None)
    return data


def dump_config(config: LlmwatchConfig) -> str:
    """YAML for ``config`` (every field written out), readable by ``load_config``."""
    return yaml.safe_dump(
        config_data(config), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
