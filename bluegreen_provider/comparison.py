"""Is the candidate's error rate worse than live's over the same window? An exact test that says so.

A soak compares the candidate slot with the live slot at every poll. Canary traffic is small (a few
hundred requests, a handful of errors), where a normal-approximation z-test is wrong: it needs about
five expected errors on each side. The exact conditional test on two Poisson rates is right at any
count: given E errors in all, the candidate's share of them is Binomial(E, π0) when its rate is
``margin`` times live's, so the p-value is a binomial tail. With ``margin = 1`` it is the Poisson
counterpart of one-sided Fisher (the two agree while errors are a small part of the requests). The
margin asks "worse than 1.5x live?", so a tiny, real difference at a huge volume does not fail a
release. It is statsmodels' ``test_poisson_2indep(value=margin, method="exact-cond",
alternative="larger")``, written with ``math`` alone.

The peers answer differently: Kayenta runs Mann-Whitney over per-interval samples (weak at low counts,
where most intervals have no error at all); Argo Rollouts and Flagger compare each measurement with a
fixed threshold (blind to how much traffic stands behind it). A soak looks several times, so the
level is split across its looks (Bonferroni: fail when ``p < alpha / looks``).

Too little evidence is ``inconclusive``, not ``pass``: too few requests on either side, or too few
errors in all. The caller decides what an inconclusive soak means; an absolute error-rate ceiling
is its way to stop a flagrant candidate before the errors add up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

FAIL = "fail"
PASS = "pass"
INCONCLUSIVE = "inconclusive"

_EPSILON = 1e-15  # relative change at which the continued fraction has converged
_TINY = 1e-300  # keeps Lentz's denominators away from zero
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Comparison:
    """The verdict of one comparison, with the counts it was computed from (rounded to whole numbers)."""

    result: str  # "fail" | "pass" | "inconclusive"
    p_value: float | None  # one-sided p of H0: rate_candidate <= margin * rate_baseline; None when not computed
    margin: float
    alpha: float
    candidate_errors: int
    candidate_requests: int
    baseline_errors: int
    baseline_requests: int
    reason: str  # one line a person reads
    looks: int = 1

    @property
    def threshold(self) -> float:
        """The level one look is held to: ``alpha / looks``."""
        return self.alpha / self.looks

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for XCom, events and logs."""
        return {**asdict(self), "threshold": self.threshold}


def compare_error_rates(
    candidate_errors: float,
    candidate_requests: float,
    baseline_errors: float,
    baseline_requests: float,
    *,
    margin: float = 1.5,
    alpha: float = 0.05,
    looks: int = 1,
    min_requests: int = 20,
    min_errors: int = 5,
    candidate_name: str = "candidate",
    baseline_name: str = "live",
) -> Comparison:
    """Fail when the candidate's error rate is significantly worse than ``margin`` times the baseline's.

    Counts may be floats (CloudWatch returns sums as floats); they are rounded to the nearest whole
    number, which is what they are, before the test. ``looks`` is how many times this soak compares
    in all; each look is held to ``alpha / looks``. Raises ``ValueError`` on impossible input.
    """
    e_c = _count("candidate_errors", candidate_errors)
    n_c = _count("candidate_requests", candidate_requests)
    e_b = _count("baseline_errors", baseline_errors)
    n_b = _count("baseline_requests", baseline_requests)
    if e_c > n_c:
        raise ValueError(f"candidate_errors ({e_c}) cannot exceed candidate_requests ({n_c})")
    if e_b > n_b:
        raise ValueError(f"baseline_errors ({e_b}) cannot exceed baseline_requests ({n_b})")
    if not (_is_number(margin) and math.isfinite(margin) and margin >= 1):
        raise ValueError(f"margin must be a finite number >= 1 (1 means 'no worse than live'), got {margin!r}")
    if not (_is_number(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    for name, value, least in (("looks", looks, 1), ("min_requests", min_requests, 0), ("min_errors", min_errors, 0)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")

    def verdict(result: str, p_value: float | None, reason: str) -> Comparison:
        return Comparison(
            result=result,
            p_value=p_value,
            margin=float(margin),
            alpha=float(alpha),
            candidate_errors=e_c,
            candidate_requests=n_c,
            baseline_errors=e_b,
            baseline_requests=n_b,
            reason=reason,
            looks=looks,
        )

    rates = f"{candidate_name} {_rate(e_c, n_c)} vs {baseline_name} {_rate(e_b, n_b)}"
    if n_c < min_requests or n_b < min_requests:
        return verdict(INCONCLUSIVE, None, f"too few requests: {rates} (need {min_requests} on each side)")

    total_errors = e_c + e_b
    weighted_candidate = margin * n_c
    p_value = binomial_upper_tail(
        e_c,
        total_errors,
        weighted_candidate / (weighted_candidate + n_b),
        q=n_b / (weighted_candidate + n_b),
    )
    threshold = alpha / looks
    evidence = _p_text(p_value)
    bound = baseline_name if margin == 1 else f"{margin:g}x {baseline_name}"
    if total_errors < min_errors:
        reason = f"too few errors to compare: {rates}, {total_errors} in all (need {min_errors}), {evidence}"
        return verdict(INCONCLUSIVE, p_value, reason)
    if p_value < threshold:
        return verdict(FAIL, p_value, f"{rates}: worse than {bound}, {evidence} < {threshold:.2g}")
    return verdict(PASS, p_value, f"{rates}: not worse than {bound}, {evidence} >= {threshold:.2g}")


def binomial_upper_tail(k: int, n: int, p: float, *, q: float | None = None) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exact to about 1e-11 relative and fast for any ``n``.

    Uses ``P(X >= k) = I_p(k, n - k + 1)``, the regularized incomplete beta, as the binomial
    probability at one point (Loader's saddle-point form, accurate at any ``n``) times a continued
    fraction evaluated with Lentz's method, which converges in about ``sqrt(n)`` steps at worst.
    Pass ``q = 1 - p`` when you have it more precisely than ``1 - p``.
    """
    if q is None:
        q = 1.0 - p
    if not (0 <= p <= 1 and 0 <= q <= 1):
        raise ValueError(f"probability must be in [0, 1], got p={p!r}, q={q!r}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0:
        return 0.0
    if q == 0:
        return 1.0
    a, b = k, n - k + 1
    if p < (a + 1) / (a + b + 2):
        # The upper tail directly: pmf(k) * q * CF. The continued fraction converges fast on this side.
        log_tail = _log_binomial_pmf(k, n, p, q) + math.log(q) + math.log(_incomplete_beta_fraction(a, b, p))
        return math.exp(log_tail)
    # Beyond the mean: one minus the lower tail P(X <= k - 1) = pmf(k - 1) * p * CF(b, a, q).
    log_lower = _log_binomial_pmf(k - 1, n, p, q) + math.log(p) + math.log(_incomplete_beta_fraction(b, a, q))
    return max(0.0, -math.expm1(log_lower))


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` by the modified Lentz method (Numerical Recipes' betacf)."""
    max_steps = 1000 + 20 * math.isqrt(int(a + b))
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, max_steps + 1):
        two_m = 2 * m
        for numerator in (
            m * (b - m) * x / ((a - 1 + two_m) * (a + two_m)),
            -(a + m) * (a + b + m) * x / ((a + two_m) * (a + 1 + two_m)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            fraction *= step
        if abs(step - 1.0) < _EPSILON:
            return fraction
    raise ArithmeticError(f"incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def _log_binomial_pmf(k: int, n: int, p: float, q: float) -> float:
    """``log P(X = k)`` for ``X ~ Binomial(n, p)``, without cancellation at large ``n`` (Loader, 2000)."""
    if k == 0:
        return n * math.log(q) if p >= 0.1 else -_deviance(n, n * q) - n * p
    if k == n:
        return n * math.log(p) if q >= 0.1 else -_deviance(n, n * p) - n * q
    log_c = (
        _stirling_error(n) - _stirling_error(k) - _stirling_error(n - k) - _deviance(k, n * p) - _deviance(n - k, n * q)
    )
    log_f = _LOG_2PI + math.log(k) + math.log1p(-k / n)
    return log_c - 0.5 * log_f


def _deviance(x: float, mean: float) -> float:
    """``x log(x / mean) + mean - x``, by a series where the two nearly cancel."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total = (x - mean) * v
        term = 2 * x * v
        v *= v
        j = 1
        while True:
            term *= v
            updated = total + term / (2 * j + 1)
            if updated == total:
                return updated
            total = updated
            j += 1
    return x * math.log(x / mean) + mean - x


# log(n!) - [(n + 1/2) log n - n + log(2 pi) / 2] for small n, where lgamma loses nothing that matters.
_STIRLING_ERROR_SMALL = (
    0.0,
    *(math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * _LOG_2PI for n in range(1, 16)),
)


def _stirling_error(n: int) -> float:
    """The error of Stirling's formula for ``log(n!)``, by its asymptotic series beyond 15."""
    if n <= 15:
        return _STIRLING_ERROR_SMALL[n]
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    nn = float(n) * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _count(name: str, value: float) -> int:
    if not (_is_number(value) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative, got {value!r}")
    return round(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rate(errors: int, requests: int) -> str:
    if requests == 0:
        return f"- ({errors}/{requests})"
    percent = 100 * errors / requests
    shown = f"{percent:.1f}" if percent == 0 or percent >= 0.1 else f"{percent:.2g}"
    return f"{shown} % ({errors}/{requests})"


def _p_text(p_value: float) -> str:
    """Two significant digits, ``p=0.0022`` or ``p=3.1e-09``; a p below what a float holds shows as a bound."""
    return "p<1e-300" if p_value == 0 else f"p={p_value:.2g}"
