"""Raw rows from the Hugging Face Hub (via `datasets`) or from a local file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Iterator, Optional

from cotdistill.core.catalog.datasets import LOCAL_FORMATS
from cotdistill.core.errors import DataError
from cotdistill.core.io import jsonl_objects, read_text, text_lines

from .records import BadRow, RawRow

# datasets' packaged builders for local files, by format
_BUILDERS = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}


def hub_rows(
    hub_id: str, config: Optional[str], splits: dict[str, str], data_files: Optional[dict[str, str]] = None
) -> Iterator[RawRow]:
    """Rows of the Hub dataset `hub_id` (config `config`), its splits renamed by `splits`.

    `data_files` ({hub split: local file}) loads the same columns from files through the
    same `datasets.load_dataset` path; the tests use it on fixtures in the Hub's format.
    """
    from datasets import load_dataset

    if data_files:
        fmt = format_of(next(iter(data_files.values())), None)
        ds = load_dataset(_BUILDERS[fmt], data_files=data_files)
    else:
        from cotdistill.core.hub import prepare_load

        prepare_load("prepare", hub_id, "dataset")  # one line when neither cached nor reachable
        try:
            ds = load_dataset(hub_id, config)
        except (OSError, ValueError) as exc:  # ConnectionError, DatasetNotFoundError, ...
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"{hub_id}: cannot load from the Hugging Face Hub ({first}); without the "
                "Hub use prepare.source: local (or packaged where the dataset has it)"
            ) from None
    for hub_split, ours in splits.items():
        if hub_split not in ds:
            raise DataError(f"{hub_id}: no split '{hub_split}' (it has {', '.join(ds)})")
        for i, row in enumerate(ds[hub_split], 1):
            yield RawRow(f"{hub_id}[{hub_split}]", i, dict(row), ours)


def format_of(path: str | Path, fmt: Optional[str]) -> str:
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in LOCAL_FORMATS:
        raise DataError(
            f"{path}: cannot tell the format from the suffix; set prepare.local.format "
            f"to one of {', '.join(sorted(set(LOCAL_FORMATS.values())))}"
        )
    return LOCAL_FORMATS[suffix]


def jsonl_rows(lines: Iterable[str], where: str) -> tuple[list[RawRow], list[BadRow]]:
    """Rows of JSONL text; a line that is not a JSON object becomes a BadRow with its number."""
    rows: list[RawRow] = []
    bad: list[BadRow] = []
    for lineno, obj, why in jsonl_objects(lines):
        if why:
            bad.append(BadRow(where, lineno, why))
        else:
            rows.append(RawRow(where, lineno, obj))
    return rows, bad


def file_rows(path: str | Path, fmt: Optional[str] = None) -> tuple[list[RawRow], list[BadRow]]:
    """Rows of a jsonl / json / parquet / csv file; unreadable lines become BadRows."""
    path = Path(path)
    fmt = format_of(path, fmt)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    where = str(path)
    rows: list[RawRow] = []
    bad: list[BadRow] = []
    if fmt == "jsonl":
        rows, bad = jsonl_rows(text_lines(path), where)
    elif fmt == "json":
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, dict):  # {"data": [...]} or {"examples": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: expected a list of objects or an object with one list")
            data = lists[0]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of objects")
        for i, obj in enumerate(data, 1):
            if isinstance(obj, dict):
                rows.append(RawRow(where, i, obj))
            else:
                bad.append(BadRow(where, i, f"not a JSON object ({type(obj).__name__})"))
    elif fmt == "csv":
        reader = csv.DictReader(text_lines(path))
        for obj in reader:
            rows.append(RawRow(where, reader.line_num, dict(obj)))
    else:
        import pyarrow.parquet as pq

        for i, obj in enumerate(pq.read_table(path).to_pylist(), 1):
            rows.append(RawRow(where, i, obj))
    if not rows and not bad:  # else the split sizes would be blamed for an empty split
        raise DataError(f"{path}: the file holds no rows")
    return rows, bad
