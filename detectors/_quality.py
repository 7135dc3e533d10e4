"""The quality signals the feedback detector joins, per (model, model_version).

Not a detector module (the leading underscore keeps ``detectors.config`` from scanning it).
Three signals, each a column of a per-row matrix (NaN where a row does not carry it):

* ``rating``: a user rating in [-1, 1], from the feedback topic;
* ``refusal``: 1 where the answer was a refusal, 0 where it was not (inference rows
  that say, i.e. ``refusal`` is set);
* ``truncation``: 1 where the answer stopped at max_tokens (``finish_reason`` length),
  0 where it ended on its own (stop, tool_calls, content_filter); failed and aborted
  requests say nothing about the answer's quality and are left out.

Regenerations and short sessions would be further signals, but no event carries them
(``InferenceEvent`` has no session or regeneration field), so they are not joined.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from schemas.columns import FINISH_CODES, FeedbackColumns, InferenceColumns

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

RATING, REFUSAL, TRUNCATION = 0, 1, 2
SIGNALS = ("rating", "refusal", "truncation")
_ANSWERED = np.array(
    [FINISH_CODES[c] for c in ("stop", "length", "tool_calls", "content_filter")], dtype=np.int64
)
_LENGTH = FINISH_CODES["length"]


def signal_matrix(batch: FeedbackColumns | InferenceColumns) -> F64:
    """(rows x 3) signal values, NaN where a row does not carry the signal."""
    n = len(batch)
    out = np.full((n, len(SIGNALS)), np.nan)
    if isinstance(batch, FeedbackColumns):
        x = np.asarray(batch.score, dtype=np.float64)
        out[:, RATING] = np.where(np.isfinite(x), np.clip(x, -1.0, 1.0), np.nan)
        return out
    ref = np.asarray(batch.refusal, dtype=np.float64)
    out[:, REFUSAL] = np.where(np.isfinite(ref), (ref > 0.5).astype(np.float64), np.nan)
    fin = np.asarray(batch.finish_reason, dtype=np.int64)
    out[:, TRUNCATION] = np.where(
        np.isin(fin, _ANSWERED), (fin == _LENGTH).astype(np.float64), np.nan
    )
    return out
