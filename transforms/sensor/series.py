"""Vectorized time-series primitives over many stations at once.

Rows are sorted by (group, time); a group is a station. Everything here
works on whole arrays with group boundaries instead of looping over
stations, so one call handles a bucket of thousands of stations.
"""
from __future__ import annotations

import numpy as np


def starts(group: np.ndarray) -> np.ndarray:
    """True on the first row of each group (rows sorted by group)."""
    s = np.ones(len(group), dtype=bool)
    s[1:] = group[1:] != group[:-1]
    return s


def previous(a: np.ndarray, first: np.ndarray, fill) -> np.ndarray:
    """a[i-1], or `fill` on the first row of a group."""
    out = np.empty_like(a)
    if len(a):
        out[1:] = a[:-1]
        out[first] = fill
    return out


def run_ids(breaks: np.ndarray) -> np.ndarray:
    """Run number per row; a new run starts wherever `breaks` is True (row 0 always)."""
    b = breaks.copy()
    if len(b):
        b[0] = True
    return np.cumsum(b) - 1


def carry_forward_in_run(flag: np.ndarray, run: np.ndarray) -> np.ndarray:
    """True from the first flagged row of a run to the run's end."""
    if not len(flag):
        return flag.copy()
    key = run.astype(np.int64) * 2 + flag.astype(np.int64)
    return np.maximum.accumulate(key) == run.astype(np.int64) * 2 + 1


def running_max_before(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Max of the earlier rows of the same group (int64); int64 min on a group's first row.

    Values are replaced by their ranks so the per-group offset trick cannot overflow.
    """
    n = len(values)
    lowest = np.iinfo(np.int64).min
    if n == 0:
        return np.zeros(0, np.int64)
    uniq, rank = np.unique(values, return_inverse=True)
    grp = np.cumsum(first) - 1
    span = np.int64(len(uniq) + 1)
    key = grp.astype(np.int64) * span + rank.astype(np.int64) + 1
    cm = np.maximum.accumulate(key)
    prev = previous(cm, first, 0)
    has = prev > grp.astype(np.int64) * span  # an earlier row of this group exists
    out = np.full(n, lowest, dtype=np.int64)
    out[has] = uniq[(prev[has] - grp[has].astype(np.int64) * span - 1)]
    return out


def window_start(group: np.ndarray, t: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Index of the first row of the trailing window (t − width, t] in the row's group.

    Rows must be sorted by (group, t). One searchsorted over a key that keeps
    groups apart: group × span + t, span wider than any time range plus window.
    """
    n = len(t)
    if n == 0:
        return np.zeros(0, np.int64)
    t = t.astype(np.int64)
    width = np.broadcast_to(np.asarray(width, dtype=np.int64), (n,))
    t0 = int(t.min())
    span = int(t.max()) - t0 + int(width.max()) + 2
    g = np.asarray(group, dtype=np.int64)
    g = g - g.min()
    if (int(g.max()) + 1) * span < (1 << 62):
        key = g * np.int64(span) + (t - t0)
        return np.searchsorted(key, key - width, side="right").astype(np.int64)
    # Pathological time spread (e.g. year-9999 stamps over many stations): per group.
    out = np.empty(n, dtype=np.int64)
    first = np.nonzero(starts(g))[0]
    ends = np.append(first[1:], n)
    for a, b in zip(first.tolist(), ends.tolist()):
        out[a:b] = a + np.searchsorted(t[a:b], t[a:b] - width[a:b], side="right")
    return out


def ragged(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten the index ranges [lo, hi) → (row indices, owner of each)."""
    lens = np.maximum(hi - lo, 0)
    total = int(lens.sum())
    owner = np.repeat(np.arange(len(lo)), lens)
    if total == 0:
        return np.zeros(0, np.int64), owner
    offs = np.cumsum(lens) - lens
    idx = np.arange(total) - np.repeat(offs, lens) + np.repeat(lo, lens)
    return idx.astype(np.int64), owner


def group_median(owner: np.ndarray, values: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(median of the non-NaN values, count of them) per owner 0..n_groups-1; NaN when empty."""
    ok = ~np.isnan(values)
    owner, values = owner[ok], values[ok]
    count = np.bincount(owner, minlength=n_groups)
    med = np.full(n_groups, np.nan)
    if len(values) == 0:
        return med, count
    order = np.lexsort((values, owner))
    v = values[order]
    begin = np.cumsum(count) - count
    has = count > 0
    lo = begin[has] + (count[has] - 1) // 2
    hi = begin[has] + count[has] // 2
    med[has] = (v[lo] + v[hi]) / 2.0
    return med, count
