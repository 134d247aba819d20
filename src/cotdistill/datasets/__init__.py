"""Datasets: a registry of loaders that return the common record of DESIGN.md.

Record: {"id", "question", "answer", "answer_type", optional "choices", optional
"gold_rationale"}. A synthetic dataset generates its named splits itself; a loaded one
(Hub, packaged file, local file) yields raw rows that `records.py` maps to the record and
`splits.py` splits. The `test_ood` split is for tasks with an out-of-distribution length
test. `prepare.py` runs the whole of the prepare stage (load, split, decontaminate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from ..registry import Registry

SPLITS = ("train", "validation", "test", "test_ood")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its answer type, how each source loads it, what is known about it.

    `load` generates the splits of a synthetic dataset: (params) -> {split: records}.
    `sources` maps a source name (hub | packaged | local) to its description; the loaders
    live in `real.py`. `default_source` is what `prepare.source: null` selects.
    """

    name: str
    answer_type: str  # number | yes_no | text | choice
    load: Optional[Callable[..., dict[str, list[dict]]]]
    offline: bool  # runs with no network beyond PyPI
    description: str
    sources: tuple[str, ...] = ("synthetic",)
    default_source: str = "synthetic"
    splits: str = "generated: train, validation, test, test_ood"
    sizes: str = "any (prepare.n_*)"
    # Templated questions share long n-grams by construction, so only exact matches count
    # as contamination there; natural-language datasets get the 13-gram check as well.
    ngram_check: bool = True
    source_notes: dict = field(default_factory=dict)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


from . import synthetic  # noqa: E402,F401  (registers its datasets)
from . import arithmetic, gsm_symbolic, real  # noqa: E402,F401
