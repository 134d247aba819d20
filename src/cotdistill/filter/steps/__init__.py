"""Step checkers: verify the intermediate claims of a CoT on tasks whose steps are checkable.

The answer filter only checks a CoT's final answer; a small teacher that is shown the
answer often copies it and rationalises with wrong steps. A step checker reads the claims a CoT
makes along the way (a coin's state after each person, the last letter of each word, each
equation) and returns a one-line description of the first wrong, missing or unreadable step,
or None when every step is right, so that a kept CoT can be wholly correct.

The coin-flip and last-letters checkers read a CoT as a sequence of claims found by a small
set of phrasings (reading.py), and then require that nothing checkable is left over: a
sentence that still mentions a person, a coin state, a flip, a count or a parity (coin
flip), or a word of the question or a letter (last letters) after its claims are taken out
is reported as unreadable. A wrong claim in an unforeseen phrasing is therefore dropped,
never kept unread; the cost is that a right one in such a phrasing is dropped too. The
multistep_arith checker reads the equations the calculator finds.

One module per dataset; checkers are registered per dataset name here:
`STEP_CHECKERS.get(name)(question, cot)`. The datasets with one are marked `step_checker`
in catalog/datasets.py (params validation reads that table, not this package).
"""

from __future__ import annotations

from typing import Callable, Optional

from cotdistill.core.registry import Registry

from .arithmetic import check_multistep_arith
from .coin_flip import check_coin_flip
from .last_letters import check_last_letters

__all__ = ["STEP_CHECKERS", "StepChecker", "check_coin_flip", "check_last_letters", "check_multistep_arith"]

StepChecker = Callable[[str, str], Optional[str]]
STEP_CHECKERS: Registry[StepChecker] = Registry("step checker")
STEP_CHECKERS.register("coin_flip", check_coin_flip)
STEP_CHECKERS.register("last_letters", check_last_letters)
STEP_CHECKERS.register("multistep_arith", check_multistep_arith)
