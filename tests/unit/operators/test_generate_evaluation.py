"""Normalisation rules and scores of the inference evaluation."""

from __future__ import annotations

import pytest

from airflow_provider_tuning.operators.evaluation import format_table, match_flags, normalize_text, score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LXIV", "lxiv"),  # casefold
        ("Straße", "strasse"),  # casefold is more than lower()
        ("  two   hundred\none\t", "two hundred one"),  # collapse and strip whitespace
        ("two hundred one.", "two hundred one"),  # trailing punctuation
        ("Yes!?...", "yes"),  # repeatedly
        ("eight .", "eight"),  # with the whitespace before it
        ("七。", "七"),  # full-width / CJK punctuation
        ("1,001", "1,001"),  # punctuation inside the text stays
        ("(a)", "(a)"),  # closing brackets stay
        ('"quoted"', '"quoted"'),  # closing quotes stay
        (".,!?", ""),  # nothing but punctuation
        ("\u3000全角\u3000スペース\u3000", "全角 スペース"),  # Unicode whitespace
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_match_flags():
    assert match_flags("LXIV", "LXIV") == {"exact_match": True, "normalized_match": True}
    assert match_flags(" lxiv.", "LXIV") == {"exact_match": False, "normalized_match": True}
    assert match_flags("LXV", "LXIV") == {"exact_match": False, "normalized_match": False}
    # No text (an error or a blocked prompt) never matches, not even an empty expectation.
    assert match_flags(None, "") == {"exact_match": False, "normalized_match": False}


def test_score_counts_only_results_with_an_expected_output():
    results = [
        {"expected": "a", "exact_match": True, "normalized_match": True},
        {"expected": "b", "exact_match": False, "normalized_match": True},
        {"expected": "c", "exact_match": False, "normalized_match": False},
        {"expected": "d", "exact_match": False, "normalized_match": True},
        {"text": "no expectation"},
    ]
    assert score(results) == {
        "exact": 0.25,
        "normalized": 0.75,
        "total": 4,
        "exact_matches": 1,
        "normalized_matches": 3,
    }
    assert score([{"text": "x"}]) is None


def test_format_table_shows_scores_and_mismatches():
    results = [
        {
            "prompt": "1",
            "text": "2",
            "expected": "2",
            "exact_match": True,
            "normalized_match": True,
            "error": None,
        },
        {
            "prompt": "3",
            "text": "5",
            "expected": "4",
            "exact_match": False,
            "normalized_match": False,
            "error": None,
        },
        {
            "prompt": "x",
            "text": None,
            "expected": "y",
            "exact_match": False,
            "normalized_match": False,
            "error": {"message": "400 INVALID_ARGUMENT: nope"},
        },
    ]
    table = format_table(results, score(results))
    assert "exact           1/3  0.3333" in table
    assert "normalized      1/3  0.3333" in table
    assert "normalized mismatches (2, first 2)" in table
    assert "error: 400 INVALID_ARGUMENT: nope" in table
    assert "      1  3" in table  # row index and prompt of the first mismatch
