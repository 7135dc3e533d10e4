"""What a row teaches the generic series detector's baselines (``robust_series``): the
plain level and scale, the daily profile, the seasonality test and the tails
(``learn_row``), the residual envelope (``learn_envelope``), the series' step
(``half_step``) and the level before the last shift (``is_return``, ``swap_level``)."""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit
from detectors.kernels.robust_layout import (
    LATTICE_A,
    LATTICE_MIN,
    RETURN_SCALES,
    S_ALT_A,
    S_ALT_S,
    S_ALT_T,
    S_DENS,
    S_EP_LEN,
    S_EP_REBASED,
    S_FIRST_T,
    S_HI,
    S_LATTICE,
    S_LO,
    S_LVL,
    S_MAG,
    S_ON_EN,
    S_ON_NOV,
    S_ON_UA,
    S_ON_US,
    S_PREV,
    S_RA,
    S_RES,
    S_RS,
    S_RUN_A,
    S_SC,
    S_SEAS,
    S_SLOW,
    S_WIN,
    S_WIN_S,
    TAIL_A,
    TAIL_AW,
    TAIL_D,
    TAIL_DN,
    TAIL_NV,
    TAIL_S,
    TAIL_SW,
    WEEK_S,
    tail_of,
)
from detectors.kernels.tail import (
    T_THRESH,
    never_moved,
    tail_learn,
    tail_learn_at_zero,
    tail_learn_runs,
)
from detectors.kernels.week_shape import week_shift
from detectors.kernels.weekday import DAY_S


@_jit
def half_step(st: A, sid: int, v: float) -> float:
    """Half the series' step where it moves in steps, else 0. The step is the smallest
    change between consecutive values seen (1 on counts, 0.002 on a CPU percentage
    reported to three decimals); the series moves in steps when nearly every change is a
    whole number of them (a spiky series' smallest change is just its smallest spike).
    Callers also cap it at half a scale, so a flat series' first jump, which sets the
    step, cannot hide the next one."""
    prev = st[S_PREV, sid]
    if prev == prev:  # NaN: restored from a snapshot that did not keep the last value
        d = abs(v - prev)
        if d > 0.0:
            step = st[S_RES, sid]
            if step <= 0.0 or d < step:
                step = d
                st[S_RES, sid] = d
            r = d / step
            off = r % 1.0  # NaN where r overflowed: not a whole number of steps
            whole = 1.0 if min(off, 1.0 - off) <= 1e-6 * r else 0.0
            st[S_LATTICE, sid] += LATTICE_A * (whole - st[S_LATTICE, sid])
    st[S_PREV, sid] = v
    return 0.5 * st[S_RES, sid] if st[S_LATTICE, sid] >= LATTICE_MIN else 0.0


@_jit
def is_return(st: A, sid: int, t: float, e: float, sc: float, seasonal: bool) -> bool:
    """Whether the row sits at the level the series held before its last level shift
    (within a week of it, outside an episode), well apart from where it is now."""
    alt = st[S_ALT_S, sid] if seasonal else st[S_ALT_A, sid]
    return bool(
        st[S_EP_LEN, sid] <= 0.0
        and t - st[S_ALT_T, sid] < WEEK_S
        and abs(alt) > 2.0 * RETURN_SCALES * sc
        and abs(e - alt) < RETURN_SCALES * sc
    )


@_jit
def swap_level(st: A, pl: A, wrows: A, week: A, tails: A, sid: int, t: float) -> None:
    """Move both baselines to the alternative level; the level left becomes the new
    alternative (so a series that moves between two known states pages neither way)."""
    da, ds = st[S_ALT_A, sid], st[S_ALT_S, sid]
    st[S_LVL, sid] += da
    st[S_SLOW, sid] = st[S_LVL, sid]
    pl[:, sid] += ds
    week_shift(st, wrows, week, sid, ds)
    st[S_ALT_A, sid], st[S_ALT_S, sid] = -da, -ds
    st[S_ALT_T, sid] = t
    cap_windows(st, tails, sid)


@_jit
def forget_recent(st: A, tails: A, sid: int) -> None:
    """The recent windows and the burst density capped at their tails' thresholds: what
    they remember (a stuck stretch just ended) cannot page by itself from here on."""
    cap_windows(st, tails, sid)
    _cap(st, tails, sid, S_DENS, TAIL_DN)


@_jit
def forget_unseen(st: A, tails: A, sid: int) -> None:
    """``forget_recent`` for the memories whose tail never saw an excess (threshold 0 on a
    series that never moved): such a tail reads anything past it as the rarest possible
    value, so a memory decaying toward 0 without reaching it would page for good. Tails
    that saw excesses judge a decaying memory by them, and it falls under them in time."""
    for col, which in ((S_WIN, TAIL_AW), (S_WIN_S, TAIL_SW), (S_DENS, TAIL_DN)):
        if never_moved(tail_of(tails, which), sid):
            _cap(st, tails, sid, col, which)


@_jit
def cap_windows(st: A, tails: A, sid: int) -> None:
    """The recent windows, capped at their tails' thresholds when the baseline moves: what
    they averaged was measured from the level left, so it must not page from the new one."""
    _cap(st, tails, sid, S_WIN, TAIL_AW)
    _cap(st, tails, sid, S_WIN_S, TAIL_SW)


@_jit
def _cap(st: A, tails: A, sid: int, col: int, which: int) -> None:
    """Column ``col`` of the state capped at the threshold of tail ``which``."""
    st[col, sid] = min(st[col, sid], tail_of(tails, which)[T_THRESH, sid])


@_jit
def learn_row(
    st: A, pl: A, ps: A, tails: A, sid: int, n: float, t: float, gap: float, v: float,
    e_a: float, e_s: float, e_d: float, sc_a: float, sc_d: float, u_a: float, win_a: float,
    u_s: float, win_s: float, u_d: float, dens: float,
    i0: int, i1: int, f: float, a_lvl: float, a_sc: float, tail_p: float, rate_a: float,
    peak_a: float, slot_days: float, seas_ratio: float, min_n: float, seas_off: float,
    sc_clip: float, a_win: float,
) -> None:  # fmt: skip
    early = n < min_n
    # The typical magnitude sets the scale's floor (a mostly-zero series has a robust
    # scale of 0), so it remembers as long as the tails do: a quiet day must not shrink
    # the unit the next ordinary spike is measured in.
    st[S_MAG, sid] += max(1.0 / (n + 1.0), rate_a) * (abs(v) - st[S_MAG, sid])
    # Non-seasonal level and scale (Huber-clipped once warm, so spikes do not move them).
    a = max(1.0 / (n + 1.0), a_lvl)
    lim = 1e300 if early else 3.0 * sc_a
    st[S_LVL, sid] += a * min(max(e_a, -lim), lim)
    st[S_SLOW, sid] += max(1.0 / (n + 1.0), a_lvl / 8.0) * min(max(v - st[S_SLOW, sid], -lim), lim)
    b = max(1.0 / (n + 1.0), a_sc)
    st[S_SC, sid] += b * (min(abs(e_a), 1e300 if early else sc_clip * sc_a) - st[S_SC, sid])
    # Daily profile: each slot remembers about slot_days of its own time.
    days = (t - st[S_FIRST_T, sid]) / DAY_S
    k = pl.shape[0]
    slot_s = DAY_S / k
    a_slot = 1.0 - math.exp(-min(gap, slot_s) / (slot_s * slot_days))
    a_slot = min(a_slot * max(1.0, slot_days / (days + 0.5)), 1.0)
    lim_s = 1e300 if days < 2.0 else 3.0 * sc_d
    # The daily profile learns its own residual and scale (``e_d``, ``sc_d``: with the
    # weekday offsets), also while the weekly profile predicts (``e_s`` is then its).
    es = min(max(e_d, -lim_s), lim_s)
    pl[i0, sid] += a_slot * (1.0 - f) * es
    pl[i1, sid] += a_slot * f * es
    abs_s = min(abs(e_d), 1e300 if days < 2.0 else 5.0 * sc_d)
    ps[i0, sid] += a_slot * (1.0 - f) * (abs_s - ps[i0, sid])
    ps[i1, sid] += a_slot * f * (abs_s - ps[i1, sid])
    # Seasonality test: each model's clipped absolute residual averaged over as long as a
    # profile slot remembers (slot_days), so an anomaly of a few hours, learned because it
    # stayed under the alert, does not switch the profile off under itself.
    c = 1.0 - math.exp(-gap / (slot_days * DAY_S)) if n > 1 else 1.0
    cap = 5.0 * sc_a
    st[S_RA, sid] += c * (min(abs(e_a), cap) - st[S_RA, sid])
    st[S_RS, sid] += c * (min(abs(e_s), cap) - st[S_RS, sid])
    if days >= 2.0:
        ratio = st[S_RS, sid] / max(st[S_RA, sid], 1e-300)
        if ratio < seas_ratio:
            st[S_SEAS, sid] = 1.0
        elif ratio > seas_off:
            st[S_SEAS, sid] = 0.0
    _tl(u_a, tails, TAIL_A, sid, tail_p, rate_a, peak_a)
    _tl_runs(win_a, tails, TAIL_AW, st, S_RUN_A, sid, tail_p, rate_a, peak_a, min_n, a_win)
    _tl(u_d, tails, TAIL_D, sid, tail_p, rate_a, peak_a)
    _tl(dens, tails, TAIL_DN, sid, tail_p, rate_a, peak_a)
    if days >= 2.0:  # the profile has seen every slot twice: its residuals mean something
        _tl(u_s, tails, TAIL_S, sid, tail_p, rate_a, peak_a)
        _tl(win_s, tails, TAIL_SW, sid, tail_p, rate_a, peak_a)


@_jit
def learn_envelope(
    st: A, tails: A, sid: int, n: float, gap: float, e: float, nov: float, env_s: float,
    min_n: float, rate_a: float, peak_a: float,
) -> None:  # fmt: skip
    """Learn the residual envelope (decaying toward 0 over ``env_s`` of time) and, after
    half the warm-up, the tail of the novelty beyond it (threshold fixed at 0: the rate
    of novel rows and the moments of their sizes)."""
    if env_s <= 0.0:
        return
    c = math.exp(-gap / env_s)
    st[S_HI, sid] = max(e, st[S_HI, sid] * c)
    st[S_LO, sid] = min(e, st[S_LO, sid] * c)
    if n >= 0.5 * min_n:
        tn = tail_of(tails, TAIL_NV)
        tail_learn_at_zero(nov, tn, sid, rate_a, peak_a)


@_jit
def _tl(u: float, tails: A, which: int, sid: int, p: float, ra: float, pa: float) -> None:
    tail_learn(u, tail_of(tails, which), sid, p, ra, pa)


@_jit
def _tl_runs(
    u: float, tails: A, which: int, st: A, col: int, sid: int, p: float, ra: float,
    pa: float, settle: float, a_win: float,
) -> None:  # fmt: skip
    """Learn a window mean's tail declustered by runs (a moving mean crosses a level in
    runs of rows, and the budget counts episodes), the running run's peak kept in
    ``col``. A run's later rows step the threshold up by the window's rate ``a_win``:
    each window length of a run counts as one exceedance of the plain quantile.

    Only the plain level's window is declustered. Against a daily profile, the
    profile's own errors (a weekday change, a slot edge) also come as slow runs, and a
    declustered tail pages on them (see ``docs/series-detector.md``)."""
    tw = tail_of(tails, which)
    st[col, sid] = tail_learn_runs(u, tw, sid, p, ra, pa, st[col, sid], settle, a_win)


@_jit
def learn_short_episode(
    st: A, tails: A, sid: int, t: float, flag: float, ep0: float, stuck: bool, u_a: float,
    u_s: float, e: float, nov: float, short: float, tail_p: float, rate_a: float,
    peak_a: float,
) -> None:  # fmt: skip
    """A short episode's opening row is learned, once, when the episode ends: the point
    tails, the residual envelope and the novelty tail take it as one more row. An
    episode's rows are otherwise never learned, so a spike that recurs (a daily job)
    paged as new every time: each page kept the next one as rare. Only an episode of
    ``short`` rows or fewer (what a rebase needs), not rebased, and not opened by a stuck
    value: a level shift is learned by its rebase, and a long stretch is no part of the
    series' normal spread. ``flag``: the row's episode flag (1 in one, 2 on the row that
    ended it); ``ep0``: the episode's rows before this one."""
    if flag == 1.0 and ep0 <= 0.0:
        st[S_ON_UA, sid] = 0.0 if stuck else u_a
        st[S_ON_US, sid] = 0.0 if stuck else u_s
        st[S_ON_EN, sid], st[S_ON_NOV, sid] = e, nov
        return
    if flag != 2.0:
        return
    if ep0 + 1.0 <= short and st[S_EP_REBASED, sid] < 0.5 and st[S_ON_UA, sid] > 0.0:
        _tl(st[S_ON_UA, sid], tails, TAIL_A, sid, tail_p, rate_a, peak_a)
        if (t - st[S_FIRST_T, sid]) / DAY_S >= 2.0:
            _tl(st[S_ON_US, sid], tails, TAIL_S, sid, tail_p, rate_a, peak_a)
        st[S_HI, sid] = max(st[S_HI, sid], st[S_ON_EN, sid])
        st[S_LO, sid] = min(st[S_LO, sid], st[S_ON_EN, sid])
        tail_learn_at_zero(st[S_ON_NOV, sid], tail_of(tails, TAIL_NV), sid, rate_a, peak_a)
    st[S_ON_UA, sid], st[S_ON_US, sid] = 0.0, 0.0
