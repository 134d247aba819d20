"""Raw rows -> the common record, with every malformed row counted and located.

A loader yields `RawRow`s (where it came from, its line or row number, the raw mapping);
a per-dataset mapper turns one into a record or raises `RowError` with the reason.
Nothing is dropped silently: `map_rows` returns the bad rows with their locations, and
`check_malformed` fails prepare when they pass `prepare.max_malformed`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from cotdistill.core.errors import DataError
from cotdistill.text.answers import parse_gold
from cotdistill.text.rationale import close_rationale


class RowError(ValueError):
    """A row that cannot become a record; the message is the reason (a short phrase)."""


class RowSkip(RowError):
    """A well-formed row outside the dataset's answer type (ASDiv's ratios, names, or
    several answers for a number task): counted and located like a malformed row, but
    not held against prepare.max_malformed, since the source is not broken."""


@dataclass(frozen=True)
class RawRow:
    where: str  # the file, archive member or Hub split the row came from
    line: int  # 1-based line (JSONL, CSV) or row number (JSON array, parquet, Hub)
    data: dict
    split: Optional[str] = None  # the source's own split, where it has them


@dataclass(frozen=True)
class BadRow:
    where: str
    line: int
    reason: str

    def as_dict(self) -> dict:
        return {"where": self.where, "line": self.line, "reason": self.reason}


Mapper = Callable[[dict, str], dict]  # (raw mapping, fallback id) -> record


def make_record(
    rid: str,
    question: object,
    gold: object,
    answer_type: str,
    choices: Optional[list[str]] = None,
    rationale: Optional[str] = None,
) -> dict:
    """The common record; a missing question or an unreadable gold raises RowError."""
    if not isinstance(question, str) or not question.strip():
        raise RowError("missing question")
    answer = parse_gold(gold, answer_type)
    if answer is None:
        raise RowError(f"unparseable {answer_type} gold {str(gold)[:40]!r}")
    rec = {
        "id": str(rid),
        "question": re.sub(r"[ \t]+", " ", question.strip()),
        "answer": answer,
        "answer_type": answer_type,
    }
    if choices is not None:
        rec["choices"] = [str(c) for c in choices]
    if rationale:
        rec["gold_rationale"] = close_rationale(rationale, answer)
    return rec


_CALC = re.compile(r"<<[^<>]*>>")


def gsm_reasoning(solution: str) -> str:
    """The reasoning of a GSM8K-style worked solution: the text before its "#### X" line,
    without the calculator annotations ("<<48/2=24>>")."""
    return _CALC.sub("", solution.split("####", 1)[0])


def map_rows(
    rows: Iterable[RawRow], mapper: Mapper, prefix: str
) -> tuple[dict[str, list[dict]], list[BadRow], list[BadRow]]:
    """Records grouped by source split ("all": no split of its own), malformed rows, and
    rows skipped as outside the answer type."""
    out: dict[str, list[dict]] = {}
    bad: list[BadRow] = []
    skipped: list[BadRow] = []
    for row in rows:
        fallback = f"{prefix}-{row.split + '-' if row.split else ''}{row.line:05d}"
        try:
            rec = mapper(row.data, fallback)
        except RowSkip as exc:
            skipped.append(BadRow(row.where, row.line, str(exc)))
            continue
        except RowError as exc:
            bad.append(BadRow(row.where, row.line, str(exc)))
            continue
        except (KeyError, TypeError, AttributeError) as exc:
            # a column missing or of the wrong shape: the row's, not the loader's, fault
            bad.append(BadRow(row.where, row.line, f"bad row shape ({type(exc).__name__}: {exc})"))
            continue
        out.setdefault(row.split or "all", []).append(rec)
    return out, bad, skipped


def malformed_summary(bad: list[BadRow]) -> dict[str, int]:
    """Counts by reason kind (the part before any quoted value)."""
    kinds = Counter(b.reason.split(" '")[0].split(" (")[0].split(' "')[0] for b in bad)
    return dict(sorted(kinds.items()))


def check_malformed(bad: list[BadRow], n_rows: int, limit: float, dataset: str) -> None:
    """Fail with the first locations when more than `limit` of the rows are malformed."""
    if not bad:
        return
    frac = len(bad) / max(n_rows, 1)
    if frac > limit:
        shown = "; ".join(f"{b.where}:{b.line}: {b.reason}" for b in bad[:3])
        raise DataError(
            f"{dataset}: {len(bad)} of {n_rows} rows are malformed ({frac:.1%} > "
            f"prepare.max_malformed {limit:.1%}), e.g. {shown}"
        )
