"""Rate arithmetic, free of I/O: counts, Wilson intervals, group tests, FMR and its extrapolation.

Definitions (open-set identification, as in NIST FRVT and the NPL study):
- TPIR(t): mated searches whose best candidate is the right identity with score >= t, over all
  mated searches (a probe that produced no vector counts as a miss); FNIR = 1 - TPIR.
- FPIR(t): non-mated searches with any candidate scoring >= t, over non-mated searches that
  produced a vector (a photo with no usable face cannot alert).
- FMR(t): impostor comparisons scoring >= t, over all probe x watchlist impostor pairs.
- FPIR at another watchlist size N, from FMR: 1 - (1 - FMR)^N. An extrapolation: it assumes
  independent comparisons, and says nothing the data could not resolve.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from lfr_platform.rates import Z95, Rate, wilson  # noqa: F401 - shared with the deployment report


def fpir_at_size(fmr: float, size: int) -> float:
    """FPIR of a watchlist of `size` entries implied by a per-comparison false match rate."""
    if fmr <= 0:
        return 0.0
    return -math.expm1(size * math.log1p(-min(fmr, 1.0 - 1e-16)))


def rescale_fpir(fpir: float, measured_size: int, target_size: int) -> float:
    """FPIR measured on one watchlist size, scaled to another assuming independent comparisons."""
    if fpir <= 0:
        return 0.0
    if fpir >= 1:
        return 1.0
    return -math.expm1(target_size / measured_size * math.log1p(-fpir))


def difference_test(counts: list[tuple[int, int]]) -> float:
    """p-value that the groups' rates (k successes of n each) are equal.

    Two groups: Fisher's exact test. More: the chi-square test of homogeneity. Groups with n = 0 are
    left out; when no group has any success (or every trial succeeded), no difference can be shown
    and p = 1.
    """
    counts = [(k, n) for k, n in counts if n > 0]
    if len(counts) < 2:
        return 1.0
    hits = sum(k for k, _ in counts)
    total = sum(n for _, n in counts)
    if hits == 0 or hits == total:
        return 1.0
    table = np.array([[k, n - k] for k, n in counts])
    if len(counts) == 2:
        return float(stats.fisher_exact(table)[1])
    return float(stats.chi2_contingency(table, correction=False)[1])


def rates_over_thresholds(scores: np.ndarray, thresholds: list[float], n: int | None = None) -> list[tuple[int, int]]:
    """For each threshold, (how many of `scores` are >= it, n). NaN scores never count.

    `n` defaults to len(scores); give it to count items that have no score (e.g. failures).
    """
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.sort(scores[~np.isnan(scores)])
    n = len(scores) if n is None else n
    return [(int(len(valid) - np.searchsorted(valid, t, side="left")), n) for t in thresholds]
