"""The filter stage: which teacher CoTs are kept (filtering.py), and the per-dataset step
checkers (steps/) that say whether each step of a CoT is right."""
