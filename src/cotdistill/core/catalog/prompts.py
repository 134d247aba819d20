"""Where the prompt files are (src/cotdistill/generate/prompts/<dataset>.yaml) and the exemplar
formats each offers, read as plain YAML: enough for validating params. prompts.py builds
the teacher's prompts from them."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import DataError, yaml_error
from ..io import read_text
from .datasets import DATASETS

PROMPT_DIR = Path(__file__).resolve().parents[2] / "generate" / "prompts"
DEFAULT_FORMAT = "default"


def prompt_path(dataset: str) -> Path:
    return PROMPT_DIR / f"{dataset}.yaml"


def resolve_format(dataset: str, fmt: str | None) -> str:
    """generate.prompt_format as the stages use it: null selects the dataset's own choice
    (DatasetInfo.prompt_format: `default`, or a format that measured better)."""
    return fmt if fmt is not None else DATASETS.get(dataset).prompt_format


def read_formats(path: str | Path) -> dict[str, dict]:
    """{format: {"instruction": ..., "exemplars": [...]}}: `default` (the file's top-level
    exemplars) and each entry of its optional `formats:` key. A file that is missing or
    not of that shape is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prompt file not found")
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise DataError(yaml_error(path, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("exemplars"), list):
        raise DataError(f"{path}: expected keys 'instruction' and 'exemplars' (a list)")
    formats = {DEFAULT_FORMAT: data}
    for name, body in (data.get("formats") or {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("exemplars"), list):
            raise DataError(f"{path}: formats.{name}: expected keys 'instruction' and 'exemplars' (a list)")
        formats[name] = body
    return formats
