"""The generic series detector's episodes: its own firing decision. An episode opens on
the first row scoring at least 0.5 and ends after ``clear_after`` rows under it; a change
that lasts becomes the new baseline (a rebase: one alert per level shift); a value
stuck inside one is no new level. Called by ``detectors.kernels.robust_series`` once
per row after a series' first, after its score (0 while the series warms up)."""

from __future__ import annotations

from detectors.kernels._base import A, _jit
from detectors.kernels.robust_layout import (
    S_ALT_A,
    S_ALT_S,
    S_ALT_T,
    S_EP_LEN,
    S_EP_MOVED,
    S_EP_PEAK,
    S_EP_QUIET,
    S_EP_RA,
    S_EP_REBASED,
    S_EP_RS,
    S_EPC,
    S_LVL,
    S_SLOW,
)
from detectors.kernels.robust_learn import cap_windows, forget_recent
from detectors.kernels.week_shape import week_shift


@_jit
def episode_step(
    st: A, pl: A, wrows: A, week: A, tails: A, sid: int, t: float, s: float, e_a: float,
    e_s: float,
    sc: float, seasonal: bool, k_flat: float, stuck: bool, unstuck: bool,
    rebase_after: float, clear_after: float,
) -> tuple[float, bool]:  # fmt: skip
    """Advance one series' episode by a scored row (``s``; ``e_a``, ``e_s`` its residuals
    from the plain level and the daily profile, ``sc`` the active baseline's scale,
    ``k_flat`` its run of repeats; ``stuck`` whether the row is a stuck value and
    ``unstuck`` whether it ended a stuck stretch, both decided by the step, which
    watches only series that rarely repeat for them). Returns the row's
    episode flag (0: none, 1: in one, 2: the row that ended one) and whether the
    baselines learn the row."""
    ep = st[S_EP_LEN, sid]
    hot = s >= 0.5
    # A stuck value (a hung exporter's last sample) says nothing of where the level
    # went: an episode's residuals and its rows toward a rebase skip it, and start
    # again when the stuck stretch ends.
    if ep <= 0.0 and hot:
        ep = 1.0
        st[S_EP_QUIET, sid] = 0.0
        st[S_EP_PEAK, sid] = s
        st[S_EP_RA, sid] = e_a
        st[S_EP_RS, sid] = e_s
        st[S_EP_MOVED, sid] = 0.0 if stuck else 1.0
        st[S_EP_REBASED, sid] = 0.0
        st[S_EPC, sid] += 1.0
    elif ep > 0.0:
        ep += 1.0
        st[S_EP_PEAK, sid] = max(st[S_EP_PEAK, sid], s)
        if unstuck:
            # The value moved again after a stuck stretch: what the recent windows and
            # the burst density remember of the stretch must not keep it firing.
            forget_recent(st, tails, sid)
        if not stuck:
            moved = 1.0 if unstuck else st[S_EP_MOVED, sid] + 1.0
            st[S_EP_MOVED, sid] = moved
            # Recent rows weigh most: the baseline moves to where the series is now
            # (the first row after a stuck stretch replaces what came before).
            st[S_EP_RA, sid] += (e_a - st[S_EP_RA, sid]) * max(1.0 / moved, 0.25)
            st[S_EP_RS, sid] += (e_s - st[S_EP_RS, sid]) * max(1.0 / moved, 0.25)
        st[S_EP_QUIET, sid] = 0.0 if hot else st[S_EP_QUIET, sid] + 1.0
    st[S_EP_LEN, sid] = ep
    flag = 1.0 if ep > 0.0 else 0.0
    # Learning decided before any rebase: the rebase row's residual is the old level's.
    # An episode's rows are not learned, unless it is a new level (rebased) or has
    # lasted so long that whatever it is has become the series' normal.
    moved = st[S_EP_MOVED, sid]  # 0 outside an episode
    learn = ep <= 0.0 or st[S_EP_REBASED, sid] > 0.5 or moved > 4.0 * rebase_after
    # A stuck value is never the series' new normal (its scale would shrink to 0).
    learn = learn and not (ep > 0.0 and k_flat > 0.0)
    shifted = abs(st[S_EP_RS, sid] if seasonal else st[S_EP_RA, sid]) > 3.0 * sc
    if moved >= rebase_after and shifted and st[S_EP_REBASED, sid] < 0.5 and k_flat <= 0.0:
        # The change has lasted and still holds: it is the new normal. One alert, then
        # a new baseline. Not while the value is stuck: a stopped series is no new
        # level (moving a daily profile to a frozen value would state ranges the
        # series never had).
        st[S_EP_REBASED, sid] = 1.0
        st[S_ALT_A, sid], st[S_ALT_S, sid] = -st[S_EP_RA, sid], -st[S_EP_RS, sid]
        st[S_ALT_T, sid] = t
        st[S_LVL, sid] += st[S_EP_RA, sid]
        st[S_SLOW, sid] = st[S_LVL, sid]
        pl[:, sid] += st[S_EP_RS, sid]  # the weekday offsets stay relative to it
        week_shift(st, wrows, week, sid, st[S_EP_RS, sid])
        cap_windows(st, tails, sid)
    if ep > 0.0 and st[S_EP_QUIET, sid] >= clear_after:
        st[S_EP_LEN, sid] = 0.0
        st[S_EP_MOVED, sid] = 0.0
        flag = 2.0
    return flag, learn
