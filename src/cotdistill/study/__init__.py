"""A pre-declared study: a committed grid (grid.py) run as queued DVC experiments (run.py),
read back (collect.py) into per-question outcomes committed beside the page (committed.py),
tested (analysis.py) and written up as one page from those files alone (page.py); one cell
can be rerun from a clean clone and compared (rerun.py). The commands: commands.py."""
