"""The false match rate where the pairs run out: a generalised Pareto tail (peaks over threshold).

Above a high score u, the excesses (score - u) of impostor pairs are fitted with a generalised Pareto
distribution (GPD; Pickands-Balkema-de Haan: the limit law of excesses over a high threshold), by
maximum likelihood with the location fixed at 0 (scipy.stats.genpareto). The tail false match rate at
a threshold t >= u is then

    FMR(t) = (exceedances / pairs) x S(t - u),  S the GPD's survival function.

The unit of evidence is the unordered pair of faces: both orders of a pair score the same and are not
two observations. Within a group, where a pair may count once or twice (once per probe of the group),
the likelihood weighs each pair by its orders, scaled so that the weights sum to the pairs.

The 95% band multiplies two intervals, bound by bound (so it is wider than a joint 95% interval): the
rate beyond u (Wilson, on unordered pairs) and S(t - u), by profile likelihood (the values of S(t - u)
that a likelihood-ratio test at 5% does not reject, chi-square with one degree of freedom; Coles 2001,
section 4.3.3). Chosen over a percentile bootstrap of the excesses, which on 30 simulated tails like
ours (xi = -0.25, 1,500 excesses) held the true S at 0.66 under its 97.5% bound 24 times, where the
profile did 29 times. What neither corrects: pairs that share a face are not independent (a face that
looks like many others is in many high pairs), so the band is narrower than the truth would be.

A group with fewer than MIN_EXCEEDANCES ordered exceedances gets no fit of its own: its tail is
"proportional", its own rate beyond u (Wilson 95% interval) times the overall tail's conditional
survival S(t - u) and its band, i.e. the group's tail is assumed to have the overall shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from lfr_eval.rates import wilson

MIN_EXCEEDANCES = 100
# Where k of n pairs at or above t is at least this, the empirical rate (its Wilson bound) is used.
DATA_SPEAK = 10
_CHI2_95 = float(stats.chi2.ppf(0.95, 1))
_XI_RANGE = (-1.0, 1.5)  # below -1 the likelihood is unbounded (Smith 1985)
_LOG_TINY = -745.0  # log of the smallest positive double: "S is 0"


@dataclass(frozen=True)
class Tail:
    method: str  # "gpd" (its own fit) or "proportional" (its rate beyond u, the overall shape)
    u: float
    xi: float
    sigma: float
    exceedances: int  # ordered pairs scoring above u
    n: int  # ordered pairs
    band: np.ndarray  # (thresholds >= u, 4): t, fit, low95, high95 of the tail FMR
    conditional: np.ndarray  # (thresholds >= u, 3): fit, low95, high95 of S(t - u)
    xi_ci95: tuple[float, float] | None = None  # profile likelihood (gpd only)

    def as_dict(self) -> dict:
        out = {
            "method": self.method,
            "u": round(self.u, 6),
            "xi": round(self.xi, 6),
            "sigma": round(self.sigma, 6),
            "exceedances": self.exceedances,
            "n": self.n,
            "band": [[round(float(t), 3), *(float(f"{v:.6g}") for v in row)] for t, *row in self.band.tolist()],
        }
        if self.xi_ci95 is not None:
            out["xi_ci95"] = [round(self.xi_ci95[0], 6), round(self.xi_ci95[1], 6)]
        return out

    def high95(self, t: float) -> float | None:
        """The band's upper bound at grid threshold t (None below u)."""
        hit = np.nonzero(np.isclose(self.band[:, 0], t, atol=1e-9))[0]
        return float(self.band[hit[0], 3]) if len(hit) else None


def choose_u(scores: np.ndarray, n: int, fraction: float) -> float:
    """The score with `fraction` of the n pairs above it, rounded down to 0.001 (so a few more exceed)."""
    scores = np.sort(np.asarray(scores, np.float64))[::-1]
    rank = max(1, math.ceil(fraction * n))
    if rank > len(scores):
        raise ValueError(f"only {len(scores)} high scores kept: cannot place u at {fraction:g} of {n} pairs")
    return math.floor(scores[rank - 1] * 1000) / 1000


def fit_gpd(excess: np.ndarray) -> tuple[float, float]:
    """(xi, sigma) of the GPD fitted to excesses over u by maximum likelihood."""
    xi, _, sigma = stats.genpareto.fit(np.asarray(excess, np.float64), floc=0)
    return float(xi), float(sigma)


def survival(y: np.ndarray, xi: float, sigma: float) -> np.ndarray:
    return stats.genpareto.sf(np.asarray(y, np.float64), xi, loc=0, scale=sigma)


class _Likelihood:
    """The GPD log-likelihood of weighted excesses, and its profiles."""

    def __init__(self, excess: np.ndarray, weight: np.ndarray, xi: float, sigma: float) -> None:
        self.x, self.w = excess, weight
        self.xi, self.sigma = xi, sigma
        self.best = self(xi, sigma)

    def __call__(self, xi: float, sigma: float) -> float:
        if not sigma > 0 or not np.isfinite(sigma):
            return -np.inf
        if abs(xi) < 1e-9:
            return float(np.sum(self.w * (-np.log(sigma) - self.x / sigma)))
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = 1 + xi * self.x / sigma
            if not np.all(z > 0):
                return -np.inf
            return float(np.sum(self.w * (-np.log(sigma) - (1 + 1 / xi) * np.log(z))))

    def _minus(self, xi: float, sigma: float) -> float:
        """What the optimiser minimises: - log-likelihood, finite outside the support."""
        value = self(xi, sigma)
        return -value if np.isfinite(value) else 1e300

    def _deviance(self, minus: float) -> float:
        """Twice the log-likelihood ratio to the best fit, less the 95% chi-square: < 0 inside."""
        return 2 * (self.best + minus) - _CHI2_95

    def _survival_deviance(self, y: float, log_s: float) -> float:
        """_deviance of the best fit whose S(y) is exp(log_s): sigma follows from xi and S(y)."""

        def minus(xi: float) -> float:
            with np.errstate(over="ignore"):
                sigma = y / -log_s if abs(xi) < 1e-9 else xi * y / np.expm1(-xi * log_s)
            return self._minus(xi, sigma)

        return self._deviance(_minimum(minus, _XI_RANGE))

    def survival_interval(self, y: float) -> tuple[float, float]:
        """The 95% profile likelihood interval of S(y)."""
        if y <= 1e-12:
            return 1.0, 1.0

        def d(log_s: float) -> float:
            return self._survival_deviance(y, log_s)

        fitted = float(survival(y, self.xi, self.sigma))
        # S(y) = 0 (beyond the fitted end point) is the limit log_s -> -inf, where d -> -chi2.
        log_fit = math.log(fitted) if fitted > 0 else _LOG_TINY
        high = math.exp(_edge(d, log_fit, -1e-12))
        low = 0.0 if fitted == 0 else math.exp(_edge(d, log_fit, _LOG_TINY))
        return (0.0 if low <= math.exp(_LOG_TINY) else low), (1.0 if high >= 1 - 1e-9 else high)

    def xi_interval(self) -> tuple[float, float]:
        """The 95% profile likelihood interval of xi (clipped to the range searched)."""
        around = (math.log(self.sigma) - 6, math.log(self.sigma) + 6)

        def d(xi: float) -> float:
            return self._deviance(_minimum(lambda ls: self._minus(xi, math.exp(ls)), around))

        return _edge(d, self.xi, _XI_RANGE[0]), _edge(d, self.xi, _XI_RANGE[1])


def _minimum(f, bounds: tuple[float, float], coarse: int = 24) -> float:
    """The smallest value of f on an interval: a coarse grid first (the penalty outside the support
    makes f jump, which a bracketing search alone can step over), then a bounded search around the best."""
    xs = np.linspace(*bounds, coarse)
    values = [f(x) for x in xs]
    i = int(np.argmin(values))
    lo, hi = xs[max(0, i - 1)], xs[min(coarse - 1, i + 1)]
    found = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return min(float(found.fun), float(values[i]))


def _edge(d, inside: float, outside: float, steps: int = 16) -> float:
    """Where d (< 0 inside the interval) first turns positive walking from `inside` to `outside`; the
    outside end when it never does; `inside` itself when d is not negative there (beyond the fitted end
    point, where any S(y) > 0 is rejected). The walk steps geometrically (finely near `inside`), then brentq."""
    if d(inside) >= 0:
        return inside
    previous = inside
    for i in range(1, steps + 1):
        x = inside + (outside - inside) * (2.0 ** (i - steps))
        if d(x) >= 0:
            return float(optimize.brentq(d, previous, x, xtol=1e-7 * max(1.0, abs(x))))
        previous = x
    return outside


def fit_tail(scores: np.ndarray, units: np.ndarray, n: int, u: float, thresholds: np.ndarray) -> Tail:
    """The GPD tail of the ordered pairs scoring above u (`scores`, each with the id of its unordered
    pair in `units`), out of n ordered pairs, with its 95% band at each of `thresholds` >= u."""
    scores, units = np.asarray(scores, np.float64), np.asarray(units)
    keep = scores > u
    scores, units = scores[keep], units[keep]
    m = len(scores)
    if m < 2:
        raise ValueError(f"{m} exceedances over u = {u}: nothing to fit")
    _, first, orders = np.unique(units, return_index=True, return_counts=True)
    excess = scores[first] - u  # one excess per unordered pair, counted `orders` times in this curve
    xi, sigma = fit_gpd(np.repeat(excess, orders))
    likelihood = _Likelihood(excess, orders * len(excess) / m, xi, sigma)
    ts = np.asarray([t for t in thresholds if t >= u - 1e-9], np.float64)
    conditional = np.array(
        [(float(survival(t - u, xi, sigma)), *likelihood.survival_interval(t - u)) for t in ts]
    ).reshape(-1, 3)
    return Tail(
        "gpd",
        u,
        xi,
        sigma,
        m,
        n,
        _band(ts, m, len(excess), n, conditional),
        conditional,
        likelihood.xi_interval(),
    )


def _band(ts: np.ndarray, m: int, units: int, n: int, conditional: np.ndarray) -> np.ndarray:
    """FMR(t) = rate beyond u x S(t - u), bound by bound; the rate's interval on unordered pairs."""
    rate = wilson(units, max(units, round(n * units / m)))
    fit, low, high = conditional.T
    return np.column_stack([ts, m / n * fit, rate.low * low, rate.high * high])


def proportional(exceedances: int, units: int, n: int, overall: Tail) -> Tail:
    """A group's tail with the overall shape: its rate beyond u (Wilson 95%) x the overall S(t - u)."""
    band = _band(overall.band[:, 0], exceedances, units, n, overall.conditional) if exceedances else None
    if band is None:  # nothing over u: the rate's upper bound still speaks
        rate = wilson(0, n)
        fit, _, high = overall.conditional.T
        band = np.column_stack([overall.band[:, 0], 0 * fit, 0 * fit, rate.high * high])
    return Tail("proportional", overall.u, overall.xi, overall.sigma, exceedances, n, band, overall.conditional)


def conservative(k: np.ndarray, n: int, thresholds: np.ndarray, tail: Tail | None) -> tuple[np.ndarray, list[str]]:
    """The deployments service's reading of a curve, per threshold: the Wilson 95% upper bound of k/n
    where k >= DATA_SPEAK ("data"), else the tail band's high95 ("fit"; the Wilson bound below u, where
    there is no band), then made non-increasing in t (each value at least every value above it)."""
    raw, source = [], []
    for t, kt in zip(thresholds, k, strict=True):
        high = tail.high95(float(t)) if tail is not None else None
        if kt >= DATA_SPEAK or high is None:
            raw.append(wilson(int(kt), n).high)
            source.append("data" if kt >= DATA_SPEAK else "data (k < 10, below u)")
        else:
            raw.append(high)
            source.append("fit")
    return np.maximum.accumulate(np.asarray(raw)[::-1])[::-1], source
