"""The report stage: the results table (reporting.py), the statistics behind it (stats.py),
and the table of DVC experiments (experiments.py)."""
