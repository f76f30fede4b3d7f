"""bench.study.metrics on values computed by hand."""

import math

import pytest

from bench.study.metrics import (
    distinct_n,
    entropy,
    kl_divergence,
    mean_sd,
    normalise,
    paired_difference,
    paired_verdict,
    pairwise_auc,
    pearson,
    rankdata,
    spearman,
    standard_error,
    t_critical,
    total_variation,
)


def test_rankdata_averages_ties():
    assert rankdata([10, 20, 20, 5]) == [2, 3.5, 3.5, 1]
    assert rankdata([3, 3, 3]) == [2, 2, 2]
    assert rankdata([]) == []


def test_spearman_without_ties_matches_the_textbook_formula():
    # d = [0, 1, 1, 0]: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # only ranks matter
    assert spearman([1, 2, 3, 4], [1, 100, 1000, 10_000]) == pytest.approx(1.0)


def test_spearman_with_ties_is_pearson_on_average_ranks():
    # ranks x = [1, 2.5, 2.5], y = [1, 2, 3]: sxy = 1.5, sxx = 1.5, syy = 2 -> 1.5 / sqrt(3)
    assert spearman([1, 2, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3))


def test_correlations_are_undefined_for_a_constant_side_or_one_point():
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([5], [1]) is None
    assert pearson([1, 2], [4, 4]) is None
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


def test_pairwise_auc_counts_ties_as_half():
    # 3>1, 3>2, 2>1 win; 2 vs 2 ties: 3.5 / 4
    assert pairwise_auc([3, 2], [1, 2]) == pytest.approx(0.875)
    assert pairwise_auc([0], [1]) == 0.0
    assert pairwise_auc([], [1]) is None


def test_distinct_n():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)    # (a,b) (b,a) (a,b)
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["a b c"], 1) == 1.0
    assert distinct_n(["a"], 2) == 0.0


def test_answer_distribution_distances():
    p = normalise({"a": 1, "b": 1})
    assert p == {"a": 0.5, "b": 0.5}
    assert normalise({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    assert total_variation(p, {"a": 1.0}) == pytest.approx(0.5)
    assert total_variation(p, p) == 0.0
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    assert kl_divergence(p, {"a": 0.25, "b": 0.75}) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl_divergence({"a": 1.0}, {"b": 1.0}, floor=1e-6) == pytest.approx(math.log(1e6))
    assert kl_divergence({"a": 1.0, "b": 0.0}, {"a": 1.0}) == 0.0   # p = 0 adds nothing
    assert entropy(p) == pytest.approx(math.log(2))
    assert entropy({"a": 1.0}) == 0.0
    with pytest.raises(ValueError):
        normalise({"a": 0})


def test_seed_statistics():
    m, sd = mean_sd([1, 2, 3, 4])
    assert m == 2.5 and sd == pytest.approx(math.sqrt(5 / 3))
    assert mean_sd([7.0]) == (7.0, 0.0)
    assert standard_error([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3) / 2)
    assert t_critical(2) == 4.303 and t_critical(1000) == 1.96
    with pytest.raises(ValueError):
        t_critical(0)


def test_paired_difference_is_a_paired_t_test():
    # d = [2, 3, 4]: mean 3, sd 1, half-width 4.303 / sqrt(3) = 2.484 < 3
    d = paired_difference([3, 4, 5], [1, 1, 1])
    assert d["mean"] == 3 and d["sd"] == pytest.approx(1.0) and d["n"] == 3
    assert d["half_width"] == pytest.approx(4.303 / math.sqrt(3))
    assert d["exceeds_seed_noise"]
    # d = [0, 1, 2]: mean 1 < 2.484
    assert not paired_difference([1, 2, 3], [1, 1, 1])["exceeds_seed_noise"]
    with pytest.raises(ValueError):
        paired_difference([1, 2], [1])


def test_paired_verdict_needs_the_interval_to_exclude_zero_and_a_real_effect():
    lower_better = paired_difference([1, 1, 1], [3, 4, 5])      # d = [-2, -3, -4]: beyond noise, lower
    assert paired_verdict(lower_better, "lower", 0.01) == "win"
    assert paired_verdict(lower_better, "higher", 0.01) == "loss"
    assert paired_verdict(lower_better, "lower", 5.0) == "tie"   # beyond noise, smaller than the least effect
    noisy = paired_difference([1, 2, 3], [1, 1, 1])             # d = [0, 1, 2]: within noise
    assert paired_verdict(noisy, "higher", 0.01) == "tie"
    assert paired_verdict(paired_difference([2.0], [1.0]), "higher", 0.01) == "tie"  # one seed: no interval
    with pytest.raises(ValueError):
        paired_verdict(noisy, "up", 0.01)
