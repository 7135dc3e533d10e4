"""The generic series detector's per-row step: robust baselines, seasonality, tail scores.

Per series (columns ``S_*`` of ``st``; a daily profile in ``pl``/``ps``; weekday
offsets in ``pw``; the weekly profile, row ``week[sid]`` of the pool ``wrows`` where it
has borrowed one; nine tail estimates in ``tails``, see ``detectors.kernels.tail``; the
ring of its last values, row ``ring[sid]`` of the pool ``hv`` where it has borrowed
one, see ``detectors.kernels.nearest``), each row is predicted (the plain level, or
the daily or weekly profile where it is in use), measured by its statistics, scored
against the budget (``r / (1 + r)`` with ``r = log p / log q``: 0.5 exactly at the
budget, ``p`` the rarest statistic's tail probability times ``n ** bonf``), judged by
the series' episode, and learned unless its episode holds it out. What each statistic
and rule is, and why, is in ``detectors.series`` and docs/series-detector.md.

The state's columns are in ``robust_layout``; what a row teaches the baselines is in
``robust_learn``; how the statistics combine, and the range a value may take alone, in
``robust_channels``; the episode (firing, rebase, stuck stretches) in
``robust_episode``. Numba caches each kernel by its own file: after editing ``tail.py``
(or another module this one imports) alone, clear ``__pycache__``. The short blocks left
inline here cost the loop 2-10% per row when moved into functions (2026-12-08).
"""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit, lend_row
from detectors.kernels.flat import FLAT_REP_MAX, flat_learn, flat_logp, flat_run
from detectors.kernels.nearest import SPAN_SLACK, nearest_push
from detectors.kernels.robust_channels import channels, nearest_u, reach, young_channel
from detectors.kernels.robust_episode import episode_step
from detectors.kernels.robust_layout import (
    S_ALT_S,
    S_BUDGET,
    S_DENS,
    S_DT,
    S_ENV_MODE,
    S_EP_LEN,
    S_EPC,
    S_FIRST_T,
    S_HI,
    S_HIGHEST,
    S_LAST_T,
    S_LO,
    S_LOWEST,
    S_LVL,
    S_MAG,
    S_N,
    S_NN_N,
    S_NN_RUN,
    S_PREV,
    S_RD,
    S_REP,
    S_RUN_F,
    S_SAME,
    S_SC,
    S_SEAS,
    S_SLOW,
    S_WEEK,
    S_WIN,
    S_WIN_S,
    S_WK_ON,
    SD_PER_MAD,
    TAIL_A,
    TAIL_FL,
    TAIL_NN,
    TAIL_NV,
    TAIL_S,
    WEEK_S,
    WHY_FLAT,
    WHY_YOUNG,
    YOUNG_FROM,
    profile_at,
    tail_of,
)
from detectors.kernels.robust_learn import (
    forget_unseen,
    half_step,
    is_return,
    learn_envelope,
    learn_row,
    learn_short_episode,
    swap_level,
)
from detectors.kernels.tail import (
    T_N,
    T_THRESH,
    tail_forget,
    tail_learn_runs,
)
from detectors.kernels.week_shape import week_at, week_learn, week_level, week_start
from detectors.kernels.weekday import (
    DAY_S,
    offset_step,
    weekday_of,
    weekday_step,
)


@_jit
def _init(st: A, pl: A, sid: int, t: float, x: float) -> None:
    st[S_N, sid] = 1.0
    st[S_LAST_T, sid] = t
    st[S_FIRST_T, sid] = t
    st[S_LVL, sid] = x
    st[S_SLOW, sid] = x
    st[S_MAG, sid] = abs(x)
    st[S_PREV, sid] = x
    st[S_LOWEST, sid] = x
    st[S_HIGHEST, sid] = x
    pl[:, sid] = x


@_jit
def series_step(
    ids: A,
    ts: A,
    x: A,
    st: A,
    pl: A,
    ps: A,
    pw: A,
    wrows: A,
    week: A,
    wfree: A,
    wn_free: A,
    tails: A,
    hv: A,
    ring: A,
    free: A,
    n_free: A,
    params: A,
) -> tuple[A, A, A, A, A, A]:
    """Score and learn a batch (rows in time order per series). Returns per row: score,
    expected value, how far below and above it a value pages by itself (see ``_reach``;
    NaN where that side is not stated), the episode flag (1 in an episode, 2 on the row
    that ended one) and which statistic was the most unusual (a ``WHY_*`` code, -1
    before it is scored)."""
    a_lvl, a_sc, a_win, tail_p, rate_a, peak_a = params[0:6]
    min_n, rebase_after, clear_after, gap_factor, slot_days, seas_ratio = params[6:12]
    use_drift, ctl = params[12], params[13]
    win_clip, seas_off, sc_clip, ctl_pow = params[14], params[15], params[16], params[17]
    bonf, a_dens = params[18], params[19]
    env_s, nn_span_s, young_k = params[20], params[21], params[22]
    n_rows = ids.size
    k = pl.shape[0]
    score = np.zeros(n_rows)
    expected = np.full(n_rows, np.nan)
    down = np.full(n_rows, np.nan)
    up = np.full(n_rows, np.nan)
    why = np.full(n_rows, -1.0)
    episode = np.zeros(n_rows)
    for i in range(n_rows):
        sid = ids[i]
        t = ts[i]
        v = x[i]
        if v != v or math.isinf(v):
            score[i] = np.nan
            continue
        if st[S_N, sid] < 1.0:
            _init(st, pl, sid, t, v)
            expected[i] = v
            continue
        if t == st[S_LAST_T, sid] and v == st[S_PREV, sid]:
            # The sample already seen, delivered again: it says nothing new (learned
            # twice, it counted as a repeat and moved every average a second step).
            score[i] = np.nan
            continue
        n = st[S_N, sid]
        # The lowest value seen (NaN: not kept by the snapshot; kept again from the next
        # row) and the highest (NaN: not kept, and then never, so the young test is off:
        # a range kept from mid-life on would be too narrow for it).
        lowest, highest = st[S_LOWEST, sid], st[S_HIGHEST, sid]
        st[S_LOWEST, sid] = v if lowest != lowest else min(lowest, v)
        st[S_HIGHEST, sid] = max(highest, v) if highest == highest else highest
        k_flat = flat_run(st[S_PREV, sid], v, st[S_SAME, sid])
        # Only a series that changes on nearly every row is watched for a stuck value: a
        # repeat there is stuck, and a run of repeats a window long ending is its end.
        watched = st[S_REP, sid] < FLAT_REP_MAX
        stuck = watched and k_flat > 0.0
        unstuck = watched and k_flat <= 0.0 and st[S_SAME, sid] * a_win >= 1.0
        st[S_SAME, sid] = k_flat
        if st[S_WEEK, sid] > 0.5 and st[S_SEAS, sid] < 0.5:
            # Without the daily profile the plain level carries the weekday offsets, where
            # the series steps with them at the day's turn: a weekday that turns into the
            # weekend over the evening (traffic) is followed by the level, not stepped.
            step = offset_step(pw, sid, st[S_LAST_T, sid], t)
            moved = v - st[S_LVL, sid]
            far = abs(moved) >= max(0.5 * abs(step), 3.0 * SD_PER_MAD * st[S_SC, sid])
            if moved * step > 0.0 and far:  # the row stepped: more than a noisy one
                st[S_LVL, sid] += step
                st[S_SLOW, sid] += step
        gap = max(t - st[S_LAST_T, sid], 0.0)
        dt = st[S_DT, sid]
        if gap > 0.0:
            st[S_DT, sid] = gap if dt <= 0.0 else dt + 0.05 * (min(gap, 10.0 * dt) - dt)
            st[S_LAST_T, sid] = t
        dt = st[S_DT, sid]
        long_gap = dt > 0.0 and gap > gap_factor * dt and gap > 3600.0
        mag = st[S_MAG, sid]
        floor = max(1e-3 * mag, 1e-9)
        # Both baselines' predictions and residuals.
        lvl = st[S_LVL, sid]
        sc_a = max(SD_PER_MAD * st[S_SC, sid], floor)
        e_a = v - lvl
        i0, i1, f = profile_at(t, k)
        dow = weekday_of(t)
        weekday_step(st[S_WEEK : S_RD + 1], pw, sid, t, v, st[S_FIRST_T, sid])
        w_off = pw[dow, sid] if st[S_WEEK, sid] > 0.5 else 0.0
        daily = (1.0 - f) * pl[i0, sid] + f * pl[i1, sid]
        pred_d = daily + w_off
        # The weekly profile, where days differ in shape, replaces the daily one.
        # A seasonal series borrows one, which starts as its daily model.
        j0, j1, g = week_at(t)
        wr = week[sid]
        if wr < 0 and st[S_SEAS, sid] > 0.5:
            wr = lend_row(week, wfree, wn_free, sid)
            if wr >= 0:
                week_start(wrows[wr], st, pl, ps, pw, sid, t)
        wk, sc_w = week_level(wrows[wr], j0, j1, g) if wr >= 0 else (pred_d, 0.0)
        sc_w = max(SD_PER_MAD * sc_w, floor)
        weekly = wr >= 0 and st[S_WK_ON, sid] > 0.5
        pred_s = wk if weekly else pred_d
        sc_d = max(SD_PER_MAD * ((1.0 - f) * ps[i0, sid] + f * ps[i1, sid]), floor)
        sc_s = sc_w if weekly else sc_d
        e_s = v - pred_s
        # The profile is used once it is detected and its own tails have learned enough.
        seasonal = st[S_SEAS, sid] > 0.5 and tail_of(tails, TAIL_S)[T_N, sid] >= 0.5 * min_n
        sc = sc_s if seasonal else sc_a
        if is_return(st, sid, t, e_s if seasonal else e_a, sc, seasonal):
            # Back to the level held before the last level shift: a known state, not a
            # new incident (a weekend's end, a rollback). The baselines move back there.
            swap_level(st, pl, wrows, week, tails, sid, t)
            lvl = st[S_LVL, sid]
            e_a = v - lvl
            pred_s -= st[S_ALT_S, sid]
            pred_d -= st[S_ALT_S, sid]
            wk -= st[S_ALT_S, sid] if weekly else 0.0  # moved only while in use
            e_s = v - pred_s
        pred = pred_s if seasonal else lvl
        u_a = math.log1p(abs(e_a) / sc_a)
        u_s = math.log1p(abs(e_s) / sc_s)
        # Continuity correction: the tails are continuous fits, but on a series that moves
        # in steps (counts) a value at a step has all of that step's mass, so it is
        # scored half a step nearer: P(U >= u) by the midpoint, not by the step's far side.
        half = half_step(st, sid, v)
        c_a, c_s = min(half, 0.5 * sc_a), min(half, 0.5 * sc_s)
        p_a = math.log1p(max(abs(e_a) - c_a, 0.0) / sc_a)
        p_s = math.log1p(max(abs(e_s) - c_s, 0.0) / sc_s)
        # The distance to the nearest of the last values (NaN where it is not measured);
        # the row then joins them, in an episode too: a new level is news once, and a
        # burst's second spike is no longer far from everything.
        u_nn, nn_on = math.nan, False
        if hv.shape[1] > 0 and dt * hv.shape[1] >= SPAN_SLACK * nn_span_s:
            r = lend_row(ring, free, n_free, sid)
            if r >= 0:
                u_nn = nearest_u(hv, r, st[S_NN_N, sid], v, half, sc_a, mag)
                # Scored once the ring holds that span: while it fills, every value is
                # nearer the edge of a thinner history than it will be.
                nn_on = st[S_NN_N, sid] * dt > nn_span_s
                st[S_NN_N, sid] = nearest_push(hv, r, st[S_NN_N, sid], v)
        u_d = math.log1p(abs(lvl - st[S_SLOW, sid]) / sc_a)
        # The window averages u clipped at its own tail threshold (when win_clip): a burst
        # counts as one exceedance, so the window measures persistence and density.
        ca = tail_of(tails, TAIL_A)[T_THRESH, sid] if win_clip > 0.0 else 1e300
        cs = tail_of(tails, TAIL_S)[T_THRESH, sid] if win_clip > 0.0 else 1e300
        ca = ca if ca > 0.0 else 1e300
        cs = cs if cs > 0.0 else 1e300
        win_a = st[S_WIN, sid] + a_win * (min(u_a, ca) - st[S_WIN, sid])
        win_s = st[S_WIN_S, sid] + a_win * (min(u_s, cs) - st[S_WIN_S, sid])
        st[S_WIN, sid] = win_a
        st[S_WIN_S, sid] = win_s
        warm = n >= min_n and not long_gap and dt > 0.0
        # Young: past a quarter of the warm-up and a whole day (a daily cycle's range is
        # in what it has seen), with a range of values (one value says nothing of how
        # far the series moves) kept since its first row.
        young = (
            not warm and young_k > 0.0 and n >= YOUNG_FROM * min_n and dt > 0.0
            and not long_gap and t - st[S_FIRST_T, sid] >= DAY_S and highest > lowest
        )  # fmt: skip
        budget = st[S_BUDGET, sid]
        log_q = math.log(min(max(budget * dt / WEEK_S, 1e-300), 0.25))
        # Alert-rate feedback: a series that has used more than its budget of episodes in
        # the last week or so gets a proportionally stricter threshold until they age out.
        epc = st[S_EPC, sid] * math.exp(-gap / WEEK_S)
        st[S_EPC, sid] = epc
        if ctl > 0.0 and epc > budget:
            log_q += ctl_pow * math.log(budget / epc)
        # Burst density: the share of recent rows beyond the active point tail's threshold,
        # over a longer window (bursts that come more often or last longer than usual).
        t_pt = TAIL_S if seasonal else TAIL_A
        t_thr = tail_of(tails, t_pt)[T_THRESH, sid]
        beyond = 1.0 if (u_s if seasonal else u_a) > t_thr else 0.0
        dens = st[S_DENS, sid] + a_dens * (beyond - st[S_DENS, sid])
        st[S_DENS, sid] = dens
        e_n = e_s if seasonal else e_a
        if e_n == 0.0 and k_flat * a_win >= 2.0:
            # Back exactly at the prediction and repeating it for two windows (a gauge
            # after a blip): what the windows and the density still remember of the blip
            # is only its decay, which their tails, where they never saw an excess, read
            # as the rarest possible value: one blip kept its alert firing for good.
            forget_unseen(st, tails, sid)
            win_a, win_s, dens = st[S_WIN, sid], st[S_WIN_S, sid], st[S_DENS, sid]
        # Novelty: how far the residual goes beyond the envelope of the residuals seen over
        # about env_s of time, in envelope widths, log-compressed (0 inside it).
        mode = (1.0 if seasonal else 0.0) + (2.0 if st[S_WEEK, sid] > 0.5 else 0.0)
        mode += 4.0 if weekly else 0.0
        if mode != st[S_ENV_MODE, sid]:
            # The baseline changed model: the old residuals' envelope says nothing about
            # the new ones, which start from 3 scales either side, nor does how often
            # rows went beyond the old one.
            st[S_ENV_MODE, sid] = mode
            st[S_HI, sid], st[S_LO, sid] = 3.0 * sc, -3.0 * sc
            tail_forget(tail_of(tails, TAIL_NV), sid)
        hi, lo = st[S_HI, sid], st[S_LO, sid]
        # A step series meets its own envelope again (ties) as the edges decay: within
        # half a step of it is not novel.
        c = c_s if seasonal else c_a
        nov = math.log1p(max(e_n - hi - c, lo - e_n - c, 0.0) / max(hi - lo, sc))
        s = 0.0
        if warm:
            lp, n_ch, why[i] = channels(
                tails, sid, seasonal, p_s, win_s, p_a, win_a, u_d, dens, nov,
                u_nn if nn_on else math.nan, use_drift, a_dens, env_s,
            )  # fmt: skip
            if stuck:
                # A value stuck for longer than the series ever is (a hung exporter). On
                # a row that changed this cannot page, so it is one more test only here.
                lf = flat_logp(k_flat, st[S_REP, sid], tail_of(tails, TAIL_FL), sid, min_n, peak_a)
                n_ch += 1.0
                if lf < lp:
                    lp, why[i] = lf, WHY_FLAT
            lp += bonf * math.log(n_ch)
            r = min(lp, 0.0) / log_q
            s = r / (1.0 + r)
            fire = log_q - bonf * math.log(n_ch)
            down[i], up[i] = reach(fire, tails, t_pt, sid, sc, hi, lo, env_s, c)
        elif young:
            # The tails have not learned enough to extrapolate to the budget's rarity;
            # a value far beyond every value the series took still pages (a new
            # series' first days are not blind to a jump).
            s, lo_v, hi_v = young_channel(v, lowest, highest, sc, c, young_k)
            # Only a row beyond the range says so: the next rows of a jump are inside
            # the range they widened, and their episode goes on for the jump.
            why[i] = WHY_YOUNG if s >= 0.5 else -1.0
            down[i], up[i] = max(pred - lo_v, 0.0), max(hi_v - pred, 0.0)
        if st[S_LOWEST, sid] >= 0.0 and pred - down[i] < 0.0:
            # A bound below zero on a series never seen below it (bytes, a CPU
            # percentage) says nothing a reader can use: only the upper is stated.
            down[i] = math.nan
        score[i] = s
        expected[i] = pred
        # The detector's own firing decision, and whether the baselines learn the row.
        ep0 = st[S_EP_LEN, sid]
        episode[i], learn = episode_step(
            st, pl, wrows, week, tails, sid, t, s, e_a, e_s, sc, seasonal, k_flat, stuck, unstuck,
            rebase_after, clear_after,
        )  # fmt: skip
        learn_short_episode(st, tails, sid, t, episode[i], ep0, stuck, u_a, u_s, e_n, nov,
                            rebase_after, tail_p, rate_a, peak_a)  # fmt: skip
        if long_gap:
            st[S_LVL, sid] = v
            st[S_SLOW, sid] = v
        if learn:
            learn_row(st, pl, ps, tails, sid, n, t, gap, v, e_a, e_s, v - pred_d, sc_a, sc_d,
                       u_a, win_a, u_s, win_s, u_d, dens, i0, i1, f, a_lvl, a_sc, tail_p,
                       rate_a, peak_a, slot_days, seas_ratio, min_n, seas_off, sc_clip,
                       a_win)  # fmt: skip
            learn_envelope(st, tails, sid, n, gap, e_n, nov, env_s, min_n, rate_a, peak_a)
        if k_flat <= 0.0 and wr >= 0:
            # The weekly profile learns every row but a stuck value's, episodes included
            # (each clipped at 3 scales): out of use it must learn the hours where the
            # daily model errs, which are that model's episodes.
            week_learn(st, wrows[wr], tails, sid, t, gap, v - wk, v - pred_d, sc_w, sc_d, j0,
                       j1, g, seas_ratio, seas_off, 0.5 * min_n)  # fmt: skip
        if u_nn == u_nn:
            # Learned on every row, as the ring is, episodes included: declustered by
            # runs, an episode's novel rows are one peak, and a tail that skipped
            # episodes learned how far a series' new values go only from those that
            # stayed under the alert (nab_dev, this statistic alone per row: 61 -> 66).
            st[S_NN_RUN, sid] = tail_learn_runs(
                u_nn, tail_of(tails, TAIL_NN), sid, tail_p, rate_a, peak_a,
                st[S_NN_RUN, sid], min_n, a_win,
            )  # fmt: skip
        if episode[i] == 0.0:
            # Never inside an episode, rebased or long: a value stuck for long is not the
            # series' new normal however long it lasts.
            st[S_REP, sid] = flat_learn(
                k_flat,
                st[S_RUN_F, sid],
                st[S_REP, sid],
                tail_of(tails, TAIL_FL),
                sid,
                rate_a,
                peak_a,
            )
            st[S_RUN_F, sid] = k_flat
        st[S_N, sid] = n + 1.0
    return score, expected, down, up, episode, why
