"""The evaluate stage: decoding, with and without the calculator (decoding.py), and scoring
a student's answers (evaluation.py)."""
