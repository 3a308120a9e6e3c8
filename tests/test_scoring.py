"""ROUGE-L and exact match against values computed by hand."""

import pytest

from clft.engine.scoring import check_metric, exact_match, example_scores, normalize_answer, rouge_l
from clft.errors import ConfigError


def test_rouge_l_one_reference_by_hand():
    # LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat" = 5 tokens of 6 and 6:
    # P = R = 5/6, F = 2PR/(P+R) = 5/6
    assert rouge_l("the cat sat on the mat", ["the cat is on the mat"]) == pytest.approx(5 / 6)


def test_rouge_l_takes_the_best_reference_and_uses_unequal_lengths():
    # vs "x y": LCS 0; vs "b c d e": LCS "b c" = 2, P = 2/3, R = 2/4, F = 2·(1/3)/(7/6) = 4/7
    assert rouge_l("a b c", ["x y", "b c d e"]) == pytest.approx(4 / 7)
    assert rouge_l("a b c", ["x y"]) == 0.0


def test_rouge_l_stems_and_ignores_case_and_punctuation():
    # Porter stemming: cats -> cat, running/runs -> run; LCS covers both tokens
    assert rouge_l("Cats running!", ["cat runs"]) == pytest.approx(1.0)
    assert rouge_l("", ["cat"]) == 0.0


def test_exact_match_normalises_like_squad():
    assert normalize_answer("  The  Answer, is: NEG. ") == "answer is neg"
    assert exact_match("The answer.", ["answer"]) == 1.0
    assert exact_match("NEG", ["POS"]) == 0.0
    assert exact_match("pos", ["NEG", "POS"]) == 1.0


def test_example_scores_per_metric_and_bad_input():
    assert example_scores("exact-match", ["a", "b"], [["a"], ["c"]]) == [1.0, 0.0]
    assert example_scores("rouge-l", ["x y"], [["x z"]]) == [pytest.approx(0.5)]
    with pytest.raises(ValueError, match="not a generation metric"):
        example_scores("accuracy", ["a"], [["a"]])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        example_scores("rouge-l", ["a", "b"], [["a"]])
    with pytest.raises(ConfigError, match="valid: accuracy, exact-match, rouge-l"):
        check_metric("bleu")
