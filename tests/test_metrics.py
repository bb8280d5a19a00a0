"""Metrics against accuracy matrices computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cl_bench.evaluation import metrics

# Three experiences of 10 test images each; correct[t][j] after training t on test set j.
CORRECT = [[9], [6, 8], [7, 5, 10]]
COUNTS = [10, 10, 10]
# a = [[90], [60, 80], [70, 50, 100]] (%)


def test_accuracy_matrix_is_lower_triangular_percentages():
    matrix = metrics.accuracy_matrix(CORRECT, COUNTS)
    expected = np.array([[90, np.nan, np.nan], [60, 80, np.nan], [70, 50, 100]])
    np.testing.assert_array_equal(matrix, expected)


def test_curve_average_and_last():
    curve = metrics.accuracy_curve(CORRECT, COUNTS)
    np.testing.assert_allclose(curve, [90, 70, 220 / 3])
    assert metrics.average_incremental_accuracy(curve) == pytest.approx((90 + 70 + 220 / 3) / 3)
    assert metrics.last_accuracy(curve) == pytest.approx(220 / 3)


def test_curve_weights_experiences_by_test_size():
    # 1/2 right on a set of 2 and 10/10 on a set of 10: A = 11/12, not the mean of 50% and 100%.
    curve = metrics.accuracy_curve([[1], [1, 10]], [2, 10])
    assert curve[1] == pytest.approx(100 * 11 / 12)


def test_forgetting_max_uses_best_earlier_accuracy():
    # j=0: best before last = max(90, 60) = 90 -> 90-70 = 20; j=1: 80 - 50 = 30; mean 25.
    assert metrics.forgetting_max(metrics.accuracy_matrix(CORRECT, COUNTS)) == pytest.approx(25)


def test_forgetting_max_differs_from_avalanche_definition():
    # a[0][0]=50, then it rises to 90, falls to 60: max-based 30, initial-based -10.
    matrix = metrics.accuracy_matrix([[5], [9, 5], [6, 5, 5]], COUNTS)
    assert metrics.forgetting_max(matrix) == pytest.approx((30 + 0) / 2)
    assert metrics.forgetting_initial(matrix) == pytest.approx((-10 + 0) / 2)
    assert metrics.backward_transfer(matrix) == pytest.approx(5)


def test_forgetting_initial_and_bwt():
    matrix = metrics.accuracy_matrix(CORRECT, COUNTS)
    # j=0: 90-70 = 20, j=1: 80-50 = 30 -> 25; BWT = -25.
    assert metrics.forgetting_initial(matrix) == pytest.approx(25)
    assert metrics.backward_transfer(matrix) == pytest.approx(-25)


def test_single_experience_has_no_forgetting():
    matrix = metrics.accuracy_matrix([[3]], [4])
    assert metrics.forgetting_max(matrix) is None
    assert metrics.backward_transfer(matrix) is None


def test_summarise_is_json_ready():
    summary = metrics.summarise(CORRECT, COUNTS)
    assert summary["accuracy_matrix"][0] == [90.0, None, None]
    assert summary["last_accuracy"] == pytest.approx(220 / 3)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in summary.values())


def test_ragged_rows_are_rejected():
    with pytest.raises(ValueError, match="row 1"):
        metrics.accuracy_matrix([[1], [1]], [2, 2])
