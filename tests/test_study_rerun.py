"""`cotdistill study rerun-cell`: one declared cell rerun from a clean clone, its predictions
compared question by question with the committed ones; a difference fails only where the
code and the float signature are the same."""

import pytest

from cotdistill.study.rerun import Rerun, compare, report

from .test_study_committed import SIG

A = {("gold", "test", "plain"): {"q1": (True, False), "q2": (False, True), "q3": (True, False)}}


def rerun(made, committed=A, old=SIG, new=SIG, code_changed=()):
    machine = {"train/gold": old} if old else {}
    return Rerun(
        "c",
        "a" * 40,
        "b" * 40,
        compare(committed, made),
        machine,
        {"train/gold": new},
        None if code_changed is None else list(code_changed),
    )


def test_counts_per_variant_split_and_decoding():
    made = {("gold", "test", "plain"): {"q1": (True, False), "q2": (False, False), "q4": (True, False)}}
    (c,) = compare(A, made)
    assert (c.identical, c.different, c.only_committed, c.only_new) == (1, ["q2"], 1, 1)
    # an outcome committed without its invalid flag (`-`) is compared on right or wrong alone
    old = {("gold", "test", "plain"): {"q1": (True, None), "q2": (False, None)}}
    assert compare(old, A)[0].different == [] and compare(old, made)[0].identical == 2


@pytest.mark.parametrize(
    "change, failed, says",
    [
        ({}, False, "identical: every question has the committed outcome"),
        ({"made": "flip"}, True, "FAILED: outcomes differ although the code and the float signature are the same"),
        ({"made": "flip", "new": {**SIG, "threads": 2}}, False, "another float signature (train/gold)"),
        (
            {"made": "flip", "new": {**SIG, "cpu": "GenuineIntel Xeon"}},
            True,
            "FAILED",
        ),  # portable: the cpu decides nothing
        ({"made": "flip", "old": None}, False, "the committed cell has no signature"),
        ({"made": "flip", "code_changed": ["src/x.py"]}, False, "the code changed since the cell ran"),
        ({"made": "flip", "code_changed": None}, False, "the cell's commit is unknown here"),
    ],
)
def test_a_difference_fails_only_with_the_same_code_and_float_signature(change, failed, says):
    made = {k: dict(v) for k, v in A.items()}
    if change.pop("made", None):
        made[("gold", "test", "plain")]["q1"] = (False, False)
    r = rerun(made, **change)
    assert r.failed is failed and says in report(r)
    if change.get("new", {}).get("threads") == 2:
        assert "committed torch=2.13.0+cpu, threads=1" in report(r)
