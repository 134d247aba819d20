"""Datasets: a registry of loaders that return the common record of DESIGN.md.

Record: {"id", "question", "answer", "answer_type", optional "choices", optional
"gold_rationale"}. A loader takes the validated Params and returns named splits; the
`test_ood` split is for tasks with an out-of-distribution length test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import Registry

SPLITS = ("train", "validation", "test", "test_ood")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    answer_type: str  # number | yes_no | text | choice
    load: Callable[..., dict[str, list[dict]]]  # (params) -> {split: records}
    offline: bool
    description: str
    sources: tuple[str, ...] = ("synthetic",)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


from . import synthetic  # noqa: E402,F401  (registers its datasets)
