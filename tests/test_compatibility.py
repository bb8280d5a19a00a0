"""Compatibility metrics against hand-computed matrices, scikit-learn's average precision
and a brute-force top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from cl_bench.evaluation.compatibility import (
    class_templates,
    instance_retrieval,
    search_top1,
    summarise,
)


def test_ac_am_and_ecc_on_a_hand_computed_matrix():
    matrix = [
        [50.0],
        [55.0, 60.0],  # (1,0): 55 > 50 yes
        [50.0, 61.0, 70.0],  # (2,0): 50 > 50 no (strict); (2,1): 61 > 60 yes
    ]
    result = summarise(matrix)
    assert result["ac"] == pytest.approx(2 / 3)
    assert result["am"] == pytest.approx((50 + 55 + 60 + 50 + 61 + 70) / 6)
    assert result["ecc"] == [True, True]
    worse = summarise([[50.0], [40.0, 60.0]])
    assert worse["ac"] == 0.0 and worse["ecc"] == [False]
    assert summarise([[42.0]]) == {"ac": None, "am": 42.0, "ecc": []}


def test_undefined_scores_are_left_out_not_invented():
    """One test image per class: no query has a relevant gallery image, so instance
    scores are None, and AC / AM / ECC rest on the defined entries only."""
    features = torch.eye(3)
    labels, ids = torch.arange(3), torch.arange(3)
    assert instance_retrieval(features, labels, features, labels, ids, ids) == {
        "cmc_top1": None, "cmc_top5": None, "map": None,
    }  # fmt: skip
    partial = summarise([[None], [55.0, 60.0], [50.0, 61.0, 70.0]])
    assert partial["ac"] == 1.0  # only (2,1) is defined, and it holds
    assert partial["am"] == pytest.approx((55 + 60 + 50 + 61 + 70) / 5)
    assert partial["ecc"] == [None, True]
    assert summarise([[None]]) == {"ac": None, "am": None, "ecc": []}


def test_search_uses_normalised_class_templates():
    gallery = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 2])
    templates, classes = class_templates(gallery, labels)
    torch.testing.assert_close(templates, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071]]),
                               atol=1e-4, rtol=0)  # fmt: skip
    assert classes.tolist() == [0, 1, 2]
    queries = torch.tensor([[5.0, 0.1], [0.2, 9.0], [2.0, 2.1], [1.0, 0.0]])
    query_labels = torch.tensor([0, 1, 2, 2])  # the last is nearest to class 0: wrong
    assert search_top1(queries, query_labels, gallery, labels) == pytest.approx(75.0)
    wider = torch.cat([queries, torch.randn(4, 3)], dim=1)  # compared on 2 leading dims
    assert search_top1(wider, query_labels, gallery, labels) == pytest.approx(75.0)


def test_search_leaves_the_query_image_out_of_its_template():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    labels = torch.tensor([0, 0, 1, 1])
    ids = torch.arange(4)
    # Query 1 is gallery image 1: with itself in class 0's template it is found (45 deg
    # away), without it the template is image 0 alone (90 deg) and class 1 is nearer.
    assert search_top1(gallery[1:2], labels[1:2], gallery, labels) == 100.0
    assert search_top1(gallery[1:2], labels[1:2], gallery, labels, ids[1:2], ids) == 0.0
    brute = [
        int((torch.stack([
            F.normalize(gallery[(labels == c) & (ids != i)].mean(0), dim=0) for c in (0, 1)
        ]) @ gallery[i]).argmax()) == int(labels[i])
        for i in range(4)
    ]  # fmt: skip
    expected = 100 * sum(brute) / 4
    assert search_top1(gallery, labels, gallery, labels, ids, ids) == pytest.approx(expected)
    # A query whose class has no other image has no right answer: skipped, as in
    # instance retrieval; with no answerable query at all the score is undefined.
    single = search_top1(gallery[:1], labels[:1], gallery[[0, 2]], labels[[0, 2]],
                         ids[:1], ids[[0, 2]])  # fmt: skip
    assert single is None
    mixed = search_top1(gallery[[0, 2]], labels[[0, 2]], gallery[[0, 2, 3]],
                        labels[[0, 2, 3]], ids[[0, 2]], ids[[0, 2, 3]])  # fmt: skip
    found = int((gallery[[3]] @ gallery[2]).item() > (gallery[[0]] @ gallery[2]).item())
    assert mixed == 100.0 * found  # query 0 is skipped; query 2 is scored against image 3


def brute_force(queries, query_labels, gallery, gallery_labels, query_ids, gallery_ids):
    top1, top5, aps = [], [], []
    for feature, label, qid in zip(queries, query_labels, query_ids, strict=True):
        others = [g for g in range(len(gallery)) if gallery_ids[g] != qid]
        truth = np.array([int(gallery_labels[g] == label) for g in others])
        if not truth.any():
            continue
        scores = np.array([
            float(torch.nn.functional.cosine_similarity(feature, gallery[g], dim=0))
            for g in others
        ])  # fmt: skip
        ranked = truth[np.argsort(-scores, kind="stable")]
        top1.append(ranked[:1].max())
        top5.append(ranked[:5].max())
        aps.append(average_precision_score(truth, scores))
    return 100 * np.mean(top1), 100 * np.mean(top5), 100 * np.mean(aps)


@pytest.mark.parametrize("same_images", [True, False])
def test_instance_retrieval_matches_sklearn_and_brute_force(same_images):
    generator = torch.Generator().manual_seed(0)
    gallery_labels = torch.randint(0, 6, (60,), generator=generator)
    centres = torch.randn(6, 16, generator=generator)
    gallery = centres[gallery_labels] + 0.9 * torch.randn(60, 16, generator=generator)
    gallery_ids = torch.arange(60)
    if same_images:  # the same images embedded by another model: ids shared, self left out
        queries = gallery + 0.3 * torch.randn(60, 16, generator=generator)
        query_labels, query_ids = gallery_labels, gallery_ids
    else:
        query_labels = torch.randint(0, 6, (25,), generator=generator)
        queries = centres[query_labels] + 0.9 * torch.randn(25, 16, generator=generator)
        query_ids = torch.arange(100, 125)
    result = instance_retrieval(queries, query_labels, gallery, gallery_labels,
                                query_ids, gallery_ids)  # fmt: skip
    top1, top5, mean_ap = brute_force(queries, query_labels, gallery, gallery_labels,
                                      query_ids, gallery_ids)  # fmt: skip
    assert result["cmc_top1"] == pytest.approx(top1)
    assert result["cmc_top5"] == pytest.approx(top5)
    assert result["map"] == pytest.approx(mean_ap, abs=1e-4)
    assert 0 < result["map"] < 100 and result["cmc_top1"] <= result["cmc_top5"]
