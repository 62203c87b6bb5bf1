"""The exact conditional comparison of a candidate's error rate with live's, and the binomial tail under it."""

from __future__ import annotations

import json
import math

import pytest

from bluegreen_provider.comparison import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Comparison,
    binomial_upper_tail,
    compare_error_rates,
)


def direct_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) by summing the binomial terms one by one."""
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(max(k, 0), n + 1))


# -- the known values --------------------------------------------------------------------------------


def test_margin_one_matches_the_one_sided_fisher_example() -> None:
    comparison = compare_error_rates(6, 200, 9, 1800, margin=1)

    # 15 errors in all; under H0 each lands on the candidate with probability 200 / 2000.
    assert comparison.p_value == pytest.approx(direct_upper_tail(6, 15, 0.1), rel=1e-12, abs=0)
    assert round(comparison.p_value, 4) == 0.0022
    assert comparison.result == FAIL
    assert "worse than live, p=0.0022 < 0.05" in comparison.reason


def test_three_percent_against_half_a_percent_fails_at_canary_volume() -> None:
    comparison = compare_error_rates(12, 400, 18, 3600, margin=1.5, alpha=0.05, looks=20)

    pi0 = 1.5 * 400 / (1.5 * 400 + 3600)
    assert comparison.p_value == pytest.approx(direct_upper_tail(12, 30, pi0), rel=1e-12, abs=0)
    assert comparison.p_value < 0.05 / 20
    assert comparison.result == FAIL
    assert comparison.reason.startswith("candidate 3.0 % (12/400) vs live 0.5 % (18/3600): worse than 1.5x live, p=")
    assert comparison.reason.endswith("< 0.0025")


def test_both_at_eight_percent_pass() -> None:
    comparison = compare_error_rates(32, 400, 288, 3600)

    assert comparison.result == PASS
    assert comparison.p_value > 0.9
    assert "not worse than 1.5x live" in comparison.reason


@pytest.mark.parametrize("margin", [1.0, 1.5])
def test_equal_rates_pass(margin: float) -> None:
    comparison = compare_error_rates(20, 1000, 200, 10000, margin=margin)

    assert comparison.result == PASS
    assert comparison.p_value >= 0.05


def test_a_better_candidate_passes_with_p_near_one() -> None:
    comparison = compare_error_rates(1, 1000, 100, 10000)

    assert comparison.result == PASS
    assert comparison.p_value > 0.999


def test_the_margin_forgives_a_small_real_difference_at_huge_volume() -> None:
    # 1.1 % against 1.0 % over millions of requests: significant at margin 1, not at margin 1.5.
    strict = compare_error_rates(55_000, 5_000_000, 500_000, 50_000_000, margin=1)
    lenient = compare_error_rates(55_000, 5_000_000, 500_000, 50_000_000, margin=1.5)

    assert strict.result == FAIL
    assert lenient.result == PASS
    assert lenient.p_value == pytest.approx(1.0)


def test_looks_split_the_level() -> None:
    once = compare_error_rates(9, 400, 18, 3600, looks=1)
    ten_times = compare_error_rates(9, 400, 18, 3600, looks=10)

    assert once.p_value == ten_times.p_value
    assert 0.005 < once.p_value < 0.05
    assert once.result == FAIL
    assert ten_times.result == PASS
    assert ten_times.threshold == pytest.approx(0.005)


# -- too little evidence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "side"),
    [((2, 10, 1, 1000), "candidate"), ((5, 1000, 0, 19), "baseline")],
)
def test_too_few_requests_on_either_side_is_inconclusive(counts: tuple[int, int, int, int], side: str) -> None:
    comparison = compare_error_rates(*counts, min_requests=20)

    assert comparison.result == INCONCLUSIVE
    assert comparison.p_value is None
    assert comparison.reason.startswith("too few requests: ")
    assert "(need 20 on each side)" in comparison.reason


def test_too_few_errors_is_inconclusive_even_with_a_computed_p() -> None:
    comparison = compare_error_rates(3, 200, 1, 1800, min_errors=5)

    assert comparison.result == INCONCLUSIVE
    assert comparison.p_value == pytest.approx(
        direct_upper_tail(3, 4, 1.5 * 200 / (1.5 * 200 + 1800)), rel=1e-12, abs=0
    )
    assert comparison.reason.startswith("too few errors to compare: ")
    assert "4 in all (need 5)" in comparison.reason


def test_no_errors_at_all_is_inconclusive_and_p_is_one() -> None:
    comparison = compare_error_rates(0, 500, 0, 5000)

    assert comparison.result == INCONCLUSIVE
    assert comparison.p_value == 1.0


def test_lowered_guards_let_small_counts_through() -> None:
    comparison = compare_error_rates(4, 20, 0, 2000, min_requests=1, min_errors=0)

    assert comparison.result == FAIL
    assert comparison.p_value == pytest.approx((1.5 * 20 / (1.5 * 20 + 2000)) ** 4, rel=1e-12, abs=0)


# -- input ------------------------------------------------------------------------------------------


def test_cloudwatch_float_sums_are_rounded_to_whole_counts() -> None:
    from_floats = compare_error_rates(11.6, 400.0, 18.2, 3599.9)
    from_ints = compare_error_rates(12, 400, 18, 3600)

    assert from_floats == from_ints
    assert (from_floats.candidate_errors, from_floats.baseline_requests) == (12, 3600)


def test_names_and_values_appear_in_the_reason() -> None:
    comparison = compare_error_rates(12, 400, 18, 3600, candidate_name="green", baseline_name="blue")

    assert comparison.reason.startswith("green 3.0 % (12/400) vs blue 0.5 % (18/3600)")
    assert "worse than 1.5x blue" in comparison.reason


def test_to_dict_is_json_and_carries_the_decision() -> None:
    comparison = compare_error_rates(12, 400, 18, 3600, looks=4)

    restored = json.loads(json.dumps(comparison.to_dict()))

    assert restored["result"] == FAIL
    assert restored["p_value"] == comparison.p_value
    assert restored["threshold"] == pytest.approx(0.0125)
    assert restored["looks"] == 4
    assert (restored["candidate_errors"], restored["candidate_requests"]) == (12, 400)
    assert (restored["baseline_errors"], restored["baseline_requests"]) == (18, 3600)
    assert restored["reason"] == comparison.reason
    assert Comparison(**{k: v for k, v in restored.items() if k != "threshold"}) == comparison


def test_an_inconclusive_to_dict_keeps_p_none() -> None:
    assert json.loads(json.dumps(compare_error_rates(0, 5, 0, 5).to_dict()))["p_value"] is None


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-1, 100, 0, 100), {}, "candidate_errors cannot be negative"),
        ((0, 100, 0, -5), {}, "baseline_requests cannot be negative"),
        ((101, 100, 0, 100), {}, r"candidate_errors \(101\) cannot exceed candidate_requests \(100\)"),
        ((0, 100, 7, 6), {}, r"baseline_errors \(7\) cannot exceed baseline_requests \(6\)"),
        ((math.nan, 100, 0, 100), {}, "candidate_errors must be a finite number"),
        ((0, math.inf, 0, 100), {}, "candidate_requests must be a finite number"),
        (("3", 100, 0, 100), {}, "candidate_errors must be a finite number"),
        ((0, 100, 0, 100), {"margin": 0.9}, "margin must be a finite number >= 1"),
        ((0, 100, 0, 100), {"margin": math.inf}, "margin must be a finite number >= 1"),
        ((0, 100, 0, 100), {"alpha": 0}, "alpha must be between 0 and 1"),
        ((0, 100, 0, 100), {"alpha": 1}, "alpha must be between 0 and 1"),
        ((0, 100, 0, 100), {"alpha": math.nan}, "alpha must be between 0 and 1"),
        ((0, 100, 0, 100), {"looks": 0}, "looks must be a whole number >= 1"),
        ((0, 100, 0, 100), {"looks": 2.0}, "looks must be a whole number >= 1"),
        ((0, 100, 0, 100), {"min_requests": -1}, "min_requests must be a whole number >= 0"),
        ((0, 100, 0, 100), {"min_errors": -1}, "min_errors must be a whole number >= 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare_error_rates(*args, **kwargs)


# -- the binomial tail -----------------------------------------------------------------------------------

_SMALL_N = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 45, 60)
_PROBABILITIES = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99, 0.999)


@pytest.mark.parametrize("n", _SMALL_N)
@pytest.mark.parametrize("p", _PROBABILITIES)
def test_the_continued_fraction_tail_matches_direct_summation(n: int, p: float) -> None:
    for k in range(n + 2):
        expected = direct_upper_tail(k, n, p)
        assert binomial_upper_tail(k, n, p) == pytest.approx(expected, rel=1e-9, abs=0), (k, n, p)


@pytest.mark.parametrize(
    ("k", "n", "p", "expected"),
    [
        (0, 10, 0.3, 1.0),
        (-2, 10, 0.3, 1.0),
        (0, 0, 0.3, 1.0),
        (11, 10, 0.3, 0.0),
        (1, 10, 0.0, 0.0),
        (0, 10, 0.0, 1.0),
        (10, 10, 1.0, 1.0),
        (3, 10, 1.0, 1.0),
    ],
)
def test_tail_edges(k: int, n: int, p: float, expected: float) -> None:
    assert binomial_upper_tail(k, n, p) == expected


def test_tail_refuses_a_probability_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"probability must be in \[0, 1\]"):
        binomial_upper_tail(1, 10, 1.2)


def test_a_big_outage_gives_a_sane_p() -> None:
    # Two million errors in all: the candidate at exactly 1.5x live sits on H0's boundary, p near 1/2.
    boundary = compare_error_rates(600_000, 10_000_000, 1_400_000, 35_000_000)
    # The candidate at 1.6x: overwhelming evidence, p underflows to zero rather than to NaN.
    worse = compare_error_rates(640_000, 10_000_000, 1_400_000, 35_000_000)

    assert boundary.candidate_errors + boundary.baseline_errors == 2_000_000
    assert boundary.result == PASS
    assert 0.45 < boundary.p_value < 0.55
    assert worse.result == FAIL
    assert worse.p_value == 0.0
    assert "p<1e-300" in worse.reason


@pytest.mark.parametrize("p", [1e-5, 0.01, 0.3, 0.5, 0.97])
def test_large_n_tail_is_consistent_with_its_mirror_and_the_normal_limit(p: float) -> None:
    n = 2_000_000
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    for z in (-3.0, -1.0, 0.0, 1.0, 3.0):
        k = math.ceil(mean + z * sd)
        upper = binomial_upper_tail(k, n, p)
        # P(X >= k) + P(n - X >= n - k + 1) = 1, computed along the other branch of the continued fraction.
        mirror = binomial_upper_tail(n - k + 1, n, 1 - p, q=p)
        assert math.isfinite(upper)
        assert upper + mirror == pytest.approx(1.0, abs=1e-9)
        if sd > 100:  # the normal limit (with continuity correction) is good to ~1e-3 there
            normal = 0.5 * math.erfc((k - 0.5 - mean) / sd / math.sqrt(2))
            assert upper == pytest.approx(normal, abs=2e-3)


def exact_half_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2) from whole-number coefficients; int / int rounds correctly."""
    if k > n / 2:
        term = total = math.comb(n, k)
        for j in range(k, n):
            term = term * (n - j) // (j + 1)
            total += term
            if term * 10**18 < total:
                break
        return total / (1 << n)
    term = below = math.comb(n, k - 1)
    for j in range(k - 1, 0, -1):
        term = term * j // (n - j + 1)
        below += term
        if term * 10**18 < below:
            break
    return ((1 << n) - below) / (1 << n)


@pytest.mark.parametrize("z", [-1.0, 0.0, 1.0, 3.0])
def test_large_n_tail_keeps_near_full_precision(z: float) -> None:
    # Near the mean the binomial point probability is a difference of huge logarithms; the
    # saddle-point form keeps it to a few ulps where plain lgamma arithmetic loses ~1e-12.
    n = 20_000
    k = math.ceil(n / 2 + z * math.sqrt(n) / 2)
    assert binomial_upper_tail(k, n, 0.5) == pytest.approx(exact_half_tail(k, n), rel=5e-14, abs=0)
