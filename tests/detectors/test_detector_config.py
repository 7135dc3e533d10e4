"""detectors.config: detectors found automatically, one config section each."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detectors.base import DetectorConfig
from detectors.config import build_detectors, detector_classes, detectors_config_model


def test_every_detector_has_a_default_section() -> None:
    classes = detector_classes()
    assert {"gpu_health", "drift", "feedback", "slo_burn"} <= set(classes)
    cfg = detectors_config_model()()  # no file at all: every default
    for name, cls in classes.items():
        section = getattr(cfg, name)
        assert isinstance(section, cls.Config) and isinstance(section, DetectorConfig)
        assert section.enabled is True


def test_default_build_has_one_of_each() -> None:
    built = build_detectors()
    assert sorted(d.name for d in built) == sorted(detector_classes())


def test_unknown_key_names_the_field_path() -> None:
    model = detectors_config_model()
    with pytest.raises(ValidationError) as err:
        model.model_validate({"slo_burn": {"burn_faster": 2}})
    assert "slo_burn.burn_faster" in str(err.value)
    with pytest.raises(ValidationError) as err:
        model.model_validate({"no_such_detector": {}})
    assert "no_such_detector" in str(err.value)


def test_bad_value_names_the_field_path() -> None:
    model = detectors_config_model()
    with pytest.raises(ValidationError) as err:
        model.model_validate({"drift": {"window_s": -5}})
    assert "drift.window_s" in str(err.value)
    with pytest.raises(ValidationError) as err:
        model.model_validate(
            {"slo_burn": {"rules": [{"long_s": "soon", "short_s": 60, "factor": 2}]}}
        )
    assert "slo_burn.rules.0.long_s" in str(err.value)


def test_enabled_false_leaves_a_detector_out() -> None:
    model = detectors_config_model()
    cfg = model.model_validate({"drift": {"enabled": False}, "feedback": {"enabled": False}})
    names = {d.name for d in build_detectors(cfg)}
    assert "drift" not in names and "feedback" not in names
    assert "slo_burn" in names and "gpu_health" in names


def test_sections_carry_their_values_into_detectors() -> None:
    cfg = detectors_config_model().model_validate({"slo_burn": {"availability_target": 0.99}})
    slo = next(d for d in build_detectors(cfg) if d.name == "slo_burn")
    assert slo.config.model_dump()["availability_target"] == 0.99


def test_config_is_frozen() -> None:
    cfg = detectors_config_model()()
    with pytest.raises(ValidationError):
        cfg.drift = None  # type: ignore[attr-defined]


def test_persistent_by_construction_detectors_wait_less_by_default() -> None:
    from stream.lifecycle_config import LifecycleConfig

    lc = LifecycleConfig()
    assert lc.rule_for("gpu_health").for_s == 10.0
    assert lc.rule_for("traffic").for_s == 10.0
    assert lc.rule_for("latency").for_s == lc.defaults.for_s == 30.0
