"""A pre-declared study: a committed grid (grid.py) run as queued DVC experiments (run.py),
read back (collect.py), tested (analysis.py) and written up as one page (page.py)."""
