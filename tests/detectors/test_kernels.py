"""Every kernel against a plain-Python reference, with hypothesis property tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import kernels as k

SET = settings(max_examples=40, deadline=None)
vals = st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=1, max_size=60)
rows = st.lists(
    st.tuples(st.integers(0, 2), st.floats(0, 500), st.floats(-50, 50)), min_size=1, max_size=60
)


def arrays(r: list[tuple[int, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([a for a, _, _ in r], dtype=np.int64)
    return ids, np.array([b for _, b, _ in r]), np.array([c for _, _, c in r])


def ref_ewma(
    r: list[tuple[int, float, float]],
    hl: float,
    min_w: float,
    floor: float,
    gate_hi: float,
    max_freeze: float,
) -> list[float]:
    s: dict[int, list[float]] = {}
    out = []
    for sid, t, v in r:
        mean, var, w, last, fz = s.get(sid, [0.0, 0.0, 0.0, -math.inf, math.nan])
        dt = t - last
        wd = w * (2 ** (-dt / hl) if dt > 0 else 1.0)
        z = (v - mean) / math.sqrt(max(var, floor)) if wd >= min_w else 0.0
        out.append(z)
        if wd >= min_w and z > gate_hi:
            fz = t if math.isnan(fz) else fz
            if t - fz < max_freeze:
                s[sid] = [mean, var, w, last, fz]
                continue
            mean, w, fz = v, 1.0, math.nan
        else:
            fz = math.nan
            a = 1 / (wd + 1)
            d = v - mean
            mean, var, w = mean + a * d, (1 - a) * (var + a * d * d), wd + 1
        s[sid] = [mean, var, w, max(last, t), fz]
    ref_ewma.last = {sid: v[3] for sid, v in s.items()}  # type: ignore[attr-defined]
    return out


@SET
@given(rows, st.sampled_from([math.inf, 2.0]))
def test_ewma_matches_reference(r, gate) -> None:  # type: ignore[no-untyped-def]
    ids, ts, x = arrays(r)
    st_ = (np.zeros(3), np.zeros(3), np.zeros(3), np.full(3, -np.inf), np.full(3, np.nan))
    z = k.ewma_update(ids, ts, x, *st_, 30.0, 2.0, 1e-6, -np.inf, gate, 100.0)
    np.testing.assert_allclose(z, ref_ewma(r, 30.0, 2.0, 1e-6, gate, 100.0), rtol=1e-7, atol=1e-7)
    # A row held out by the gate (frozen baseline) does not move the series' clock.
    last = ref_ewma.last  # type: ignore[attr-defined]
    assert (st_[3][ids] == [last[s] for s in ids.tolist()]).all()


def test_ewma_skips_nan_and_learns_constant() -> None:
    ids = np.zeros(4, dtype=np.int64)
    st_ = (np.zeros(1), np.zeros(1), np.zeros(1), np.full(1, -np.inf), np.full(1, np.nan))
    z = k.ewma_update(
        ids,
        np.arange(4.0),
        np.array([5.0, np.nan, 5.0, 5.0]),
        *st_,
        60.0,
        1.0,
        1e-9,
        -np.inf,
        np.inf,
        1.0,
    )
    assert np.isnan(z[1]) and st_[0][0] == 5.0 and z[3] == 0.0


Sketch = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def sketch(
    x: Sequence[float] | npt.NDArray[np.float64],
    nb: int = 4096,
    hl: float = math.inf,
    ts: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float32], Sketch]:
    n = len(x)
    c = np.zeros((1, nb), np.float32)
    st_: Sketch = (np.zeros(1, np.int64), np.zeros(1), np.zeros(1))
    t = np.zeros(n) if ts is None else ts
    k.sketch_add(
        np.zeros(n, np.int64), t, np.asarray(x, float), c, *st_, 1.02 / 0.98, 1e-3, hl, 0.5
    )
    return c, st_


@SET
@given(vals, st.sampled_from([0.5, 0.95, 0.99]))
def test_sketch_relative_error(x, q) -> None:  # type: ignore[no-untyped-def]
    c, (off, tot, ref) = sketch(x)
    got, eff = k.sketch_quantiles(
        np.array([0]), c, off, tot, ref, 0.0, math.inf, 1.02 / 0.98, np.array([q])
    )
    true = float(np.sort(x)[math.floor(q * (len(x) - 1))])
    assert abs(got[0, 0] - true) <= 0.02 * true * (1 + 1e-9)
    assert eff[0] == len(x)


@SET
@given(vals, vals, vals)
def test_sketch_merge_commutes_and_associates(a, b, c) -> None:  # type: ignore[no-untyped-def]
    sk = [sketch(v, nb=32, hl=60.0, ts=np.full(len(v), float(i))) for i, v in enumerate((a, b, c))]
    flat = [(s[0][0], int(s[1][0][0]), float(s[1][1][0]), float(s[1][2][0])) for s in sk]
    ab = k.sketch_merge(*flat[0], *flat[1], 60.0)
    ba = k.sketch_merge(*flat[1], *flat[0], 60.0)
    assert ab[1:] == ba[1:]
    np.testing.assert_allclose(ab[0], ba[0], rtol=1e-6)
    left = k.sketch_merge(*ab, *flat[2], 60.0)
    right = k.sketch_merge(*flat[0], *k.sketch_merge(*flat[1], *flat[2], 60.0), 60.0)
    assert left[1] == right[1] and left[3] == right[3]
    np.testing.assert_allclose(left[0], right[0], rtol=1e-5)
    assert math.isclose(left[2], right[2], rel_tol=1e-9)


def test_sketch_keeps_high_quantiles_when_collapsing() -> None:
    x = np.concatenate([np.full(990, 0.01), np.linspace(1000, 2000, 10)])
    c, (off, tot, ref) = sketch(x, nb=32)
    got, _ = k.sketch_quantiles(
        np.array([0]), c, off, tot, ref, 0.0, math.inf, 1.02 / 0.98, np.array([0.999])
    )
    assert abs(got[0, 0] - np.sort(x)[math.floor(0.999 * 999)]) < 0.02 * 2000


def test_sketch_window_forgets() -> None:
    ts = np.concatenate([np.zeros(100), np.full(100, 600.0)])
    x = np.concatenate([np.full(100, 10.0), np.full(100, 100.0)])
    c, (off, tot, ref) = sketch(x, nb=64, hl=30.0, ts=ts)
    got, _ = k.sketch_quantiles(
        np.array([0]), c, off, tot, ref, 600.0, 30.0, 1.02 / 0.98, np.array([0.01])
    )
    assert abs(got[0, 0] - 100) < 3


@SET
@given(rows)
def test_cusum_and_page_hinkley_match_reference(r) -> None:  # type: ignore[no-untyped-def]
    ids, _, x = arrays(r)
    hi, lo = k.cusum_update(ids, x, np.zeros(3), np.zeros(3), 0.5, np.inf)
    ph = k.page_hinkley_update(
        ids, x, np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), 0.1, 0.999
    )
    s: dict[int, list[float]] = {}
    for i, (sid, _, v) in enumerate(r):
        h, low, n, mean, cum, mn = s.get(sid, [0.0] * 6)
        h, low = max(0.0, h + v - 0.5), max(0.0, low - v - 0.5)
        n += 1
        mean += (v - mean) / n
        cum = 0.999 * cum + v - mean - 0.1
        mn = min(mn, cum)
        s[sid] = [h, low, n, mean, cum, mn]
        assert math.isclose(hi[i], h, abs_tol=1e-9) and math.isclose(lo[i], low, abs_tol=1e-9)
        assert math.isclose(ph[i], cum - mn, rel_tol=1e-9, abs_tol=1e-9)


@SET
@given(st.floats(0, 4e9))
def test_hour_of_week_matches_datetime(t) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    d = datetime.fromtimestamp(t, UTC)
    assert k.hour_of_week(t) == d.weekday() * 24 + d.hour


@SET
@given(rows)
def test_seasonal_matches_reference(r) -> None:  # type: ignore[no-untyped-def]
    ids, ts, y = arrays(r)
    ts = ts * 1000.0
    b = (np.zeros((3, 168)), np.zeros((3, 168)), np.zeros((3, 168)))
    g = (np.zeros(3), np.zeros(3), np.zeros(3))
    z, _, _ = k.seasonal_update(ids, ts, y, *b, *g, 0.3, 0.1, 2.0, 1e-6, -np.inf, np.inf)
    sb: dict[tuple[int, int], list[float]] = {}
    sg: dict[int, list[float]] = {}

    def learn(s: list[float], v: float, alpha: float) -> list[float]:
        mean, var, w = s
        wd = w * (1 - alpha)
        a = 1 / (wd + 1)
        d = v - mean
        return [mean + a * d, (1 - a) * (var + a * d * d), wd + 1]

    for i, (sid, t, v) in enumerate(r):
        h = k.hour_of_week(t * 1000.0)
        bs, gs = sb.get((sid, h), [0.0, 0.0, 0.0]), sg.get(sid, [0.0, 0.0, 0.0])
        src = bs if bs[2] >= 2 else gs if gs[2] >= 2 else None
        want = 0.0 if src is None else (v - src[0]) / math.sqrt(max(src[1], 1e-6))
        assert math.isclose(z[i], want, rel_tol=1e-6, abs_tol=1e-6)
        sb[(sid, h)], sg[sid] = learn(bs, v, 0.3), learn(gs, v, 0.1)


@SET
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 300), st.booleans()), min_size=1, max_size=50
    )
)
def test_decayed_counts_match_reference(r) -> None:  # type: ignore[no-untyped-def]
    ids = np.array([a for a, _, _ in r], dtype=np.int64)
    ts = np.array([b for _, b, _ in r])
    hits = np.array([float(c) for _, _, c in r])
    n, kk = k.decayed_counts_update(
        ids,
        ts,
        hits,
        np.zeros(2),
        np.zeros(2),
        np.full(2, -np.inf),
        60.0,
        np.zeros(2, dtype=np.bool_),
    )
    for i in range(len(r)):
        same = [j for j in range(i + 1) if ids[j] == ids[i]]
        now = max(ts[j] for j in same)
        wn = sum(2 ** (-(now - ts[j]) / 60.0) for j in same)
        wk = sum(2 ** (-(now - ts[j]) / 60.0) * hits[j] for j in same)
        assert math.isclose(n[i], wn, rel_tol=1e-9) and math.isclose(
            kk[i], wk, rel_tol=1e-9, abs_tol=1e-12
        )


@SET
@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_lower_reference(hits, n) -> None:  # type: ignore[no-untyped-def]
    hits = min(hits, n)
    p, z = hits / n, 3.0
    want = (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n
    )
    got = k.wilson_lower(np.array([float(hits)]), np.array([float(n)]), z)[0]
    assert math.isclose(got, max(want, 0.0), abs_tol=1e-12) and got <= p


def test_wilson_one_of_two_is_not_significant() -> None:
    assert k.wilson_lower(np.array([1.0]), np.array([2.0]), 3.0)[0] < 0.05


@SET
@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=60))
def test_heartbeat_matches_reference(gaps) -> None:  # type: ignore[no-untyped-def]
    ts = np.cumsum([0.0, *gaps])
    ids = np.zeros(ts.size, dtype=np.int64)
    last, mean, w = np.full(1, -np.inf), np.zeros(1), np.zeros(1)
    ratio = k.heartbeat_update(ids, ts, last, mean, w, 0.1, 3.0, 10.0)
    m, ww = 0.0, 0.0
    for i, g in enumerate(np.diff(ts).tolist(), start=1):
        warm = ww >= 3.0
        want = g / m if warm and m > 0 else 0.0
        assert math.isclose(ratio[i], want, rel_tol=1e-9)
        g = min(g, 10.0 * max(m, 1e-9)) if warm else g
        ww = ww * 0.9 + 1
        m += (g - m) / ww
    assert math.isclose(mean[0], m, rel_tol=1e-9, abs_tol=1e-12)
    sr = k.silence_ratio(np.array([0]), ts[-1] + 100.0, last, mean, w, 3.0)
    assert math.isclose(sr[0], 0.0 if w[0] < 3 or m <= 0 else 100.0 / m, rel_tol=1e-9)


def ref_weekday(steps: list[tuple[float, float]], t0: float) -> tuple[list[float], list[float]]:
    """Weekday offsets in plain Python: day means against a Holt-Winters weekly level,
    offsets kept at mean zero, a plain mean over the first weeks then weight 1/2."""
    w = [0.0] * 7  # W_WEEK, W_RW, W_DAY, W_DAY_SUM, W_DAY_N, W_WMEAN, W_RD
    pw = [0.0] * 7
    first_day = math.floor(t0 / 86400.0)
    for t, v in steps:
        today = math.floor(t / 86400.0)
        if today != w[2]:
            if w[4] > 0:
                d = int(w[2] + 3) % 7
                dev = w[3] / w[4] - w[5]
                if w[6] > 0 or w[1] > 0:
                    w[1] += (abs(dev - pw[d]) - w[1]) / 7
                    w[6] += (abs(dev) - w[6]) / 7
                else:
                    w[1] = w[6] = abs(dev) + 1e-300
                weeks = math.floor((w[2] - first_day) / 7) + 1
                pw[d] += max(1 / weeks, 0.5) * (dev - pw[d])
                w[5] += (dev - pw[d]) / 7
                m = sum(pw) / 7
                pw = [p - m for p in pw]
                w[5] += m
                if today - t0 / 86400.0 >= 14:
                    w[0] = 1.0 if w[1] < 0.5 * w[6] else 0.0
            elif w[2] == 0:
                w[5] = v
            w[2], w[3], w[4] = today, 0.0, 0.0
        w[3] += v
        w[4] += 1
    return w, pw


@SET
@given(st.lists(st.tuples(st.floats(600, 3 * 86400), st.floats(-100, 100)), max_size=80))
def test_weekday_step_matches_reference(gaps) -> None:  # type: ignore[no-untyped-def]
    from detectors.kernels.weekday import offset_step, weekday_step

    t0 = 1_700_438_400.0 + 3600.0
    steps, t = [], t0
    for gap, v in [(0.0, 10.0), *gaps]:
        t += gap
        steps.append((t, v))
    w, pw = np.zeros((7, 1)), np.zeros((7, 1))
    for t, v in steps:
        weekday_step(w, pw, 0, t, v, t0)
    ref_w, ref_pw = ref_weekday(steps, t0)
    assert np.allclose(w[:, 0], ref_w, rtol=1e-9, atol=1e-9)
    assert np.allclose(pw[:, 0], ref_pw, rtol=1e-9, atol=1e-9)
    assert abs(pw[:, 0].sum()) < 1e-6  # the offsets stay at mean zero
    a, b = steps[0][0], steps[-1][0]
    da, db = (int(math.floor(x / 86400.0) + 3) % 7 for x in (a, b))
    want = ref_pw[db] - ref_pw[da] if da != db else 0.0
    assert math.isclose(offset_step(pw, 0, a, b), want, abs_tol=1e-9)


def ref_week(
    rows: list[tuple[float, float, float]], t0: float, start: float, sc: float
) -> tuple[list[float], list[float], list[float]]:
    """The weekly profile (``week_shape``) in plain Python: a level and a mean absolute
    residual per hour of the week, each row split between the two slots around it, and
    the two residual averages (weekly model, daily model) from the profile's second
    week. ``rows`` are (time, value, daily model's residual); the profile started at
    ``t0`` and was last fed at ``start``."""
    slots, week = 168, 7 * 86400.0
    row = [0.0] * (2 * slots)
    avg = [0.0, 0.0]
    last = start
    for t, v, e_d in rows:
        gap, last = t - last, t
        phase = (t % week) / 3600.0 - 0.5
        lo = math.floor(phase)
        j0, j1, g = int(lo) % slots, (int(lo) + 1) % slots, phase - lo
        e_w = v - ((1 - g) * row[j0] + g * row[j1])
        age = t - t0
        a = 1 - math.exp(-min(gap, 3600.0) / 7200.0)
        a = min(a * max(1.0, 2.0 / (age / week + 0.5)), 1.0)
        young = age < 14 * 86400.0
        ew = e_w if young else min(max(e_w, -3 * sc), 3 * sc)
        aw = abs(e_w) if young else min(abs(e_w), 5 * sc)
        for j, w in ((j0, 1 - g), (j1, g)):
            row[j] += a * w * ew
            row[slots + j] += a * w * (aw - row[slots + j])
        if age >= week:
            c = max(1 - math.exp(-gap / week), gap / max(age - week + gap, gap))
            avg[0] += c * (min(abs(e_w), 5 * sc) - avg[0])
            avg[1] += c * (min(abs(e_d), 5 * sc) - avg[1])
    return row[:slots], row[slots:], avg


@SET
@given(
    st.lists(
        st.tuples(st.floats(60, 4 * 3600), st.floats(-50, 50), st.floats(-20, 20)),
        min_size=1,
        max_size=120,
    ),
    st.floats(0.0, 20 * 86400),
)
def test_week_learn_matches_reference(rows, offset) -> None:  # type: ignore[no-untyped-def]
    from detectors.kernels import robust_layout as k
    from detectors.kernels.week_shape import SLOTS, week_at, week_learn, week_level

    t0, sc = 1_700_000_000.0, 4.0
    t = start = t0 + offset  # up to 20 days in: the clip of a two-week-old profile applies
    steps = []
    for gap, v, e_d in rows:
        t += gap
        steps.append((t, v, e_d))
    state = np.zeros((k.SERIES_COLUMNS, 1))
    state[k.S_WK_T0, 0] = t0
    tails = np.zeros((k.TAILS * 6, 1))
    row = np.zeros(2 * SLOTS)
    last = start
    for t, v, e_d in steps:
        j0, j1, g = week_at(t)
        lvl, _ = week_level(row, j0, j1, g)
        week_learn(
            state, row, tails, 0, t, t - last, v - lvl, e_d, sc, sc, j0, j1, g, 0.7, 0.8, 200.0
        )
        last = t
    want_lvl, want_mad, want_avg = ref_week(steps, t0, start, sc)
    assert np.allclose(row[:SLOTS], want_lvl, rtol=1e-9, atol=1e-9)
    assert np.allclose(row[SLOTS:], want_mad, rtol=1e-9, atol=1e-9)
    assert np.allclose(state[[k.S_WK_RES, k.S_WK_DAILY], 0], want_avg, rtol=1e-9, atol=1e-9)
