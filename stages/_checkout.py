"""Make the stages run this checkout's package, not the installed one.

A queued `dvc exp run` runs the stages in a temporary copy of the repository, which must run
its own code: an editable install points at the main workspace, which may have moved on since
the experiment was queued. Every stage imports this module first, before any `cotdistill`
import (`python stages/x.py` and `accelerate launch stages/x.py` put stages/ first on sys.path,
so `import _checkout` finds this file), and this puts the checkout's src/ ahead of the install.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
