"""The names of the prepared splits, and what each is called in metrics and reports."""

from __future__ import annotations

SPLITS = ("train", "validation", "test", "test_ood")  # data/prepared/<split>.jsonl
TEACHER_SPLITS = ("train", "validation")  # what the teacher writes CoTs for, and the filter reads
TEST_SPLITS = {"test": "id", "test_ood": "ood"}  # test split -> its metric prefix
PREFIX_LABELS = {"id": "ID", "ood": "OOD"}  # metric prefix -> its column in the report
# A local file's split column: the spellings read as each of our splits.
SPLIT_ALIASES = {"train": "train", "validation": "validation", "dev": "validation", "val": "validation", "test": "test"}
