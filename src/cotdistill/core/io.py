"""The one place that reads and writes pipeline files.

Every write is atomic (temp file in the same folder, fsync, rename), so a killed stage
never leaves a half-written file that the next stage, or DVC, would take as valid.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .errors import DataError, UserError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A full disk names the output being written (a failed write() names no file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _naming(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _naming(path):
            yield tmp_path
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _naming(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _naming(path):
            yield tmp
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_csv(path: str | os.PathLike, rows: Iterable[dict], fields: Sequence[str]) -> None:
    """A CSV file with a header; a field missing from a row is an empty cell."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), restval="", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _not_utf8(path, lineno: int, line: bytes, exc: UnicodeDecodeError, error: type[UserError]) -> UserError:
    return error(
        f"{path}:{lineno}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
        "save the file as UTF-8"
    )


def text_lines(path: str | os.PathLike, error: type[UserError] = DataError) -> Iterator[str]:
    """The lines of a UTF-8 text file (with their line ends). A missing file, or a line
    that is not UTF-8, is an `error` naming the file and the line."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; a file was expected here") from None
    except PermissionError:
        raise error(f"{path}: not readable (permission denied)") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, lineno, line, exc, error) from None


def read_text(path: str | os.PathLike, error: type[UserError] = DataError) -> str:
    """A whole UTF-8 text file; errors as in `text_lines`."""
    return "".join(text_lines(path, error))


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def jsonl_objects(lines: Iterable[str]) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, object, None) for each JSON-object line, (line number, None, why) for
    a line that is not one; blank lines are skipped."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, None, f"not valid JSON ({exc.msg})"
            continue
        if isinstance(obj, dict):
            yield lineno, obj, None
        else:
            yield lineno, None, f"not a JSON object ({type(obj).__name__})"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line fails with its file and line number."""
    rows = []
    for lineno, obj, why in jsonl_objects(text_lines(path)):
        if why:
            raise DataError(f"{path}:{lineno}: {why}")
        rows.append(obj)
    return rows


def file_digest(path: str | os.PathLike, what: str = "file") -> str:
    """SHA-256 of a file's bytes; a missing file is a DataError naming `what` (the key that points to it)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise DataError(f"{what}: {path}: file not found") from None
    return h.hexdigest()


def dvc_md5(path: str | os.PathLike) -> str:
    """The hash DVC 3 records for `path` in dvc.lock: the MD5 of a file's bytes; for a
    folder, the MD5 of the JSON list of its files' {md5, relpath} (sorted by relpath) with
    ".dir" appended (dvc_data's Tree.digest). MLflow's dataset digest, so that a run names
    the exact data DVC tracked."""
    path = Path(path)

    def md5(file: Path) -> str:
        h = hashlib.md5()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    if not path.is_dir():
        return md5(path)
    entries = sorted(
        ({"md5": md5(f), "relpath": f.relative_to(path).as_posix()} for f in path.rglob("*") if f.is_file()),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"
