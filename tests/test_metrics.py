"""Metrics from hand-worked confusion matrices, edge cases and invariants."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_bench.common.metrics import Metrics, classification_report, confusion_matrix


def test_confusion_matrix_hand_worked():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 2, 0])
    matrix = confusion_matrix(labels, preds, num_classes=3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_report_hand_worked():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 2, 0])
    report = classification_report(labels, preds, num_classes=3)
    # Column sums (predicted) 2, 3, 1; row sums (support) 2, 2, 2; diagonal 1, 2, 1.
    precision = [1 / 2, 2 / 3, 1 / 1]
    recall = [1 / 2, 2 / 2, 1 / 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]  # 0.5, 0.8, 2/3
    assert report.accuracy == pytest.approx(4 / 6)
    for k in range(3):
        row = report.per_class[k]
        assert row["class"] == k and row["support"] == 2
        assert row["precision"] == pytest.approx(precision[k])
        assert row["recall"] == pytest.approx(recall[k])
        assert row["f1"] == pytest.approx(f1[k])
    assert report.macro_precision == pytest.approx(sum(precision) / 3)
    assert report.macro_recall == pytest.approx(sum(recall) / 3)
    assert report.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert report.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_perfect_classifier():
    labels = np.arange(10).repeat(3)
    report = classification_report(labels, labels.copy())
    assert report.accuracy == 1.0
    assert report.macro_precision == report.macro_recall == report.macro_f1 == 1.0
    assert np.array_equal(np.array(report.confusion), np.diag(np.full(10, 3)))


def test_class_never_predicted_has_zero_precision():
    labels = np.array([0, 1, 2, 2])
    preds = np.array([0, 1, 1, 1])  # class 2 is never predicted
    report = classification_report(labels, preds, num_classes=3)
    assert report.per_class[2] == {"class": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report.per_class[1]["precision"] == pytest.approx(1 / 3)


def test_class_never_present_has_zero_recall_and_counts_in_macro():
    labels = np.array([0, 0, 1])
    preds = np.array([0, 2, 1])  # class 2 predicted but absent from labels
    report = classification_report(labels, preds, num_classes=3)
    assert report.per_class[2]["recall"] == 0.0
    assert report.per_class[2]["precision"] == 0.0
    assert report.per_class[2]["support"] == 0
    assert report.macro_recall == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_to_dict_is_json_ready_and_frozen():
    report = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
    doc = report.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {"accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion"}
    assert type(doc["accuracy"]) is float and type(doc["confusion"][0][0]) is int
    assert type(doc["per_class"][0]["support"]) is int
    with pytest.raises(AttributeError):
        report.accuracy = 0.0  # type: ignore[misc]
    assert isinstance(report, Metrics)


@pytest.mark.parametrize(
    ("labels", "preds", "message"),
    [
        ([0, 1, 2], [0, 1], "differ in length"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([0, 10], [0, 1], "labels contains 10"),
        ([0, 1], [0, -1], "preds contains -1"),
        ([0.0, 1.0], [0, 1], "integer"),
    ],
)
def test_invalid_inputs_raise(labels, preds, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(np.array(labels), np.array(preds))
    with pytest.raises(ValueError, match=message):
        classification_report(np.array(labels), np.array(preds))


def test_empty_and_bad_num_classes_raise():
    empty = np.array([], dtype=np.int64)
    assert confusion_matrix(empty, empty).sum() == 0
    with pytest.raises(ValueError, match="empty"):
        classification_report(empty, empty)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(np.array([0]), np.array([0]), num_classes=0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=200),
        )
    )
)
def test_report_invariants(case):
    num_classes, pairs = case
    labels = np.array([t for t, _ in pairs])
    preds = np.array([p for _, p in pairs])
    matrix = confusion_matrix(labels, preds, num_classes)
    report = classification_report(labels, preds, num_classes)
    assert matrix.sum() == len(pairs)
    assert report.accuracy == pytest.approx(np.trace(matrix) / matrix.sum())
    assert report.accuracy == pytest.approx(np.mean(labels == preds))
    for value in (report.macro_precision, report.macro_recall, report.macro_f1):
        assert 0.0 <= value <= 1.0
    assert [row["support"] for row in report.per_class] == np.bincount(labels, minlength=num_classes).tolist()
