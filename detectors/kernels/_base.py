"""Shared pieces of the kernels: the jit decorator, decay and the weighted mean/variance step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy.typing as npt
from numba import njit

A = npt.NDArray[Any]  # kernels take any-dtype arrays; the wrappers fix the dtypes
F = TypeVar("F", bound=Callable[..., Any])


def _jit(fn: F) -> F:
    # error_model="numpy": a zero variance yields inf/nan instead of raising
    # ZeroDivisionError from inside a worker's hot loop.
    return cast(F, njit(cache=True, error_model="numpy")(fn))


@_jit
def _decay(dt: float, half_life: float) -> float:
    if dt <= 0.0:
        return 1.0
    return float(2.0 ** (-dt / half_life))


@_jit
def _learn(mean: A, var: A, weight: A, sid: int, wd: float, v: float) -> None:
    # West's weighted incremental mean/variance: the new row has weight 1, the past wd.
    wn = wd + 1.0
    a = 1.0 / wn
    delta = v - mean[sid]
    mean[sid] += a * delta
    var[sid] = (1.0 - a) * (var[sid] + a * delta * delta)
    weight[sid] = wn


@_jit
def lend_row(held: A, free: A, n_free: A, sid: int) -> int:
    """The pool row series ``sid`` holds (``held[sid]``), lending it the top free row if
    it has none (-1 where none is free: the caller reserves rows before a batch for the
    series that may borrow in it, so one that was not counted borrows in a later one)."""
    r = held[sid]
    if r < 0 and n_free[0] > 0:
        n_free[0] -= 1
        r = free[n_free[0]]
        held[sid] = r
    return int(r)
