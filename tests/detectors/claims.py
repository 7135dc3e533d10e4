"""What an explanation claims, checked against the finding's own fields.

Generic over detectors: it reads the phrases explanations use, not any one detector's
template, so a rewritten detector is held to it without changes here.

* "outside / above / below <its> (expected|normal) range|bounds|band" (and "outside its
  baseline"): ``observed`` is outside ``[lower, upper]`` on that side;
* "within / inside <its> ... range|bounds|band": ``observed`` is inside;
* "range A to B": A and B are ``lower`` and ``upper``;
* "E (+/-H)": the band E +/- H is ``[lower, upper]`` (quoting one standard deviation
  beside bounds five wide is the lie this catches);
* "at X": X is ``observed``; "baseline E", "expected E": E is ``expected``.

A quoted number equals a field "as formatted": within half a unit of its last digit
shown. Fields carry the detector's own unit (ms, a fraction) while the text may say
"1.94 s" or "0.24%", so the quoted unit is normalised (ms, s, %) and one scale factor
(1, 1000, 1/1000, 100, 1/100) must fit every number of one claim.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from detectors.base import Finding

_NUM = r"([-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)"
_UNIT = r"(?:\s?(ms|s|%)(?![A-Za-z]))?"
_UNITS = {"ms": 1e-3, "s": 1.0, "%": 0.01}
_SCALES = (1.0, 1e3, 1e-3, 100.0, 1e-2)
_WHERE = r"(?:its |the )?(?:expected |normal |usual |alert )?"
_OUT = re.compile(rf"\b(outside|above|below)\b {_WHERE}(range|bounds|band|baseline)\b")
_IN = re.compile(rf"\b(within|inside)\b {_WHERE}(range|bounds|band)\b")
_RANGE = re.compile(rf"\brange {_NUM}{_UNIT} to {_NUM}{_UNIT}")
_PLUS_MINUS = re.compile(rf"{_NUM}{_UNIT}\s*\((?:\+/-|±)\s*{_NUM}{_UNIT}\)")
_AT = re.compile(rf"\bat {_NUM}{_UNIT}(?![\w.])")
_EXPECTED = re.compile(rf"\b(?:baseline|expected) {_NUM}{_UNIT}(?![\w.])")


class Quoted:
    """A number as the text shows it: its value in base units and its half-digit."""

    def __init__(self, text: str, unit: str | None) -> None:
        clean = text.replace(",", "")
        mantissa, _, exp = clean.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        factor = _UNITS.get(unit or "", 1.0)
        self.text = text + (unit or "")
        self.value = float(clean) * factor
        self.tol = 0.5 * 10.0 ** (int(exp or 0) - decimals) * factor


def _fits(pairs: list[tuple[Quoted, float | None]]) -> bool:
    """Some one scale makes every quoted number equal its field as formatted."""
    if any(x is None or not math.isfinite(x) for _, x in pairs):
        return True  # nothing to hold the text to
    for s in _SCALES:
        if all(abs(q.value - x * s) <= q.tol * (1 + 1e-9) + 1e-12 for q, x in pairs):  # type: ignore[operator]
            return True
    return False


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def problems(f: Finding) -> Iterator[str]:
    """Every claim of ``f.explanation`` that its fields contradict."""
    text = f.explanation
    obs, lo, hi = _finite(f.observed), _finite(f.lower), _finite(f.upper)
    if obs is not None:
        for m in _OUT.finditer(text):
            side = m.group(1)
            below = lo is not None and obs < lo
            above = hi is not None and obs > hi
            known = (lo is not None) if side == "below" else (hi is not None)
            ok = {"above": above, "below": below}.get(side, above or below)
            if (known or side == "outside") and (lo is not None or hi is not None) and not ok:
                yield f"says {m.group(0)!r} but observed {obs} is within [{lo}, {hi}]"
        for m in _IN.finditer(text):
            if (lo is not None and obs < lo) or (hi is not None and obs > hi):
                yield f"says {m.group(0)!r} but observed {obs} is outside [{lo}, {hi}]"
    for m in _RANGE.finditer(text):
        a, b = Quoted(m.group(1), m.group(2)), Quoted(m.group(3), m.group(4))
        if not _fits([(a, lo), (b, hi)]):
            yield f"quotes range {a.text} to {b.text}; bounds are [{lo}, {hi}]"
    for m in _PLUS_MINUS.finditer(text):
        c, h = Quoted(m.group(1), m.group(2)), Quoted(m.group(3), m.group(4))
        if lo is None or hi is None:
            continue
        if not _fits([(c, f.expected), (h, (hi - lo) / 2)]) and not _fits(
            [(Quoted(m.group(1), m.group(2)), (lo + hi) / 2), (h, (hi - lo) / 2)]
        ):
            yield f"quotes {c.text} +/- {h.text}; bounds are [{lo}, {hi}]"
    for m in _AT.finditer(text):
        q = Quoted(m.group(1), m.group(2))
        if not _fits([(q, f.observed)]):
            yield f"quotes 'at {q.text}'; observed is {f.observed}"
    for m in _EXPECTED.finditer(text):
        q = Quoted(m.group(1), m.group(2))
        if not _fits([(q, f.expected)]):
            yield f"quotes {m.group(0)!r}; expected is {f.expected}"
