"""A persistent request cache for teacher calls, in SQLite.

Keyed by a SHA-256 of (backend identity incl. model, full prompt, sampling params,
sample index), so a rerun with the same settings finds every answer it already paid
for. Each row also keeps what it cost when it was made (its tokens, its share of the
seconds of the call that answered it, the backend), so that a run answered from the
cache still reports what its generations cost. SQLite's journal makes each committed batch
durable and atomic: a kill -9 loses at most the requests in flight, never corrupts what was
committed. WAL mode and a busy
timeout let several processes (parallel `dvc queue` workers) read and write the same
file; INSERT OR IGNORE makes a request answered twice by two writers harmless.

Pay once, keep always. A batch that cannot be committed (the file locked past the busy
timeout, a full disk, a read-only or damaged file) is tried `attempts` times; then its
rows, and every later one, are appended to a spill file, `<cache>.pending.jsonl` beside
the cache, or `$TMPDIR/cotdistill-pending-<hash of the cache path>.jsonl` where that
cannot be written either (a full disk), and the call raises CacheWriteError, one line
that names the cache, the cause and the spill file. Opening the cache reads both spill
files: their answers are served like cached ones and moved into the database as soon as
it takes them. A row whose JSON is damaged is a miss (requested again), not an error; a
file that is not a SQLite database is one line that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

from cotdistill.core.errors import DataError, ResourceError

from . import Completion, Sampling

log = logging.getLogger(__name__)


class CacheWriteError(ResourceError):
    """Teacher answers that could not be committed to the cache; they are in a spill file."""


def request_key(identity: dict, prompt: str, sampling: Sampling, sample_index: int) -> str:
    payload = {
        "identity": identity,
        "prompt": prompt,
        "sampling": asdict(sampling),
        "sample_index": sample_index,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Cached:
    """A cached completion and what it cost when it was made (None: a row from before
    costs were kept)."""

    completion: Completion
    seconds: Optional[float]
    backend: Optional[str]


class RequestCache:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0, attempts: int = 3):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.attempts = attempts
        self.unwritable: str | None = None  # why the database took no more rows, once it did not
        self.damaged_rows = 0  # rows whose JSON could not be read (requested again)
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, response TEXT NOT NULL,"
                " created REAL NOT NULL, seconds REAL, backend TEXT)"
            )
            # A cache written before costs were kept gains the columns; its rows stay without a cost.
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
            for name, kind in (("seconds", "REAL"), ("backend", "TEXT")):
                if name not in columns:
                    self._db.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise CacheWriteError(
                    f"{self.path}: the teacher's request cache stayed locked for "
                    f"{busy_timeout_s:g} s by another process; rerun when it is done"
                ) from None
            raise self._damaged(exc) from None
        self._spilled = self._read_spills()
        if self._spilled:
            self._merge_spills()

    def _damaged(self, exc: BaseException) -> DataError:
        return DataError(
            f"{self.path}: the teacher's request cache cannot be read ({exc}); move it aside "
            f"(mv {self.path} {self.path}.damaged) and rerun: what it held is requested again"
        )

    # ------------------------------------------------------------------ spill files

    def spill_paths(self) -> list[Path]:
        """Where answers go when the database takes them not: beside it, else in $TMPDIR."""
        tag = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        return [
            self.path.with_name(self.path.name + ".pending.jsonl"),
            Path(tempfile.gettempdir()) / f"cotdistill-pending-{tag}.jsonl",
        ]

    def _read_spills(self) -> dict[str, tuple]:
        rows: dict[str, tuple] = {}
        for path in self.spill_paths():
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:  # a line cut by a crash is the only thing lost: its request is sent again
                    key, response, created, seconds, backend = json.loads(line)
                    Completion(**json.loads(response))
                except (ValueError, TypeError):
                    continue
                rows.setdefault(key, (key, response, created, seconds, backend))
        return rows

    def _merge_spills(self) -> None:
        try:
            self._insert(list(self._spilled.values()))
        except sqlite3.Error as exc:
            log.warning("%s: %d answers stay in its spill file (%s)", self.path, len(self._spilled), exc)
            return
        for path in self.spill_paths():
            path.unlink(missing_ok=True)
        log.info("%s: %d answers moved in from its spill file", self.path, len(self._spilled))

    def _spill(self, rows: list[tuple]) -> Path:
        """Append `rows` to the first spill file that takes them (fsynced); the path."""
        text = "".join(json.dumps(list(r), ensure_ascii=False) + "\n" for r in rows)
        causes = []
        for path in self.spill_paths():
            try:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                for r in rows:
                    self._spilled.setdefault(r[0], r)
                return path
            except OSError as exc:
                causes.append(f"{path}: {exc.strerror or exc}")
        raise CacheWriteError(
            f"{self.path}: cannot store {len(rows)} teacher answers anywhere ({'; '.join(causes)}); they are lost"
        )

    # ------------------------------------------------------------------ reads and writes

    def get_many(self, keys: list[str]) -> dict[str, Cached]:
        """The cached completions among `keys` (one query per chunk, not per key)."""
        found: dict[str, Cached] = {}
        damaged = []
        for b in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
            chunk = keys[b : b + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._db.execute(
                    f"SELECT key, response, seconds, backend FROM requests WHERE key IN ({marks})", chunk
                ).fetchall()
            except sqlite3.DatabaseError as exc:  # a file cut short reads as "malformed" here
                raise self._damaged(exc) from None
            for key, response, seconds, backend in rows:
                try:
                    found[key] = Cached(Completion(**json.loads(response)), seconds, backend)
                except (ValueError, TypeError):
                    damaged.append(key)
        for key in keys:
            if key not in found and key in self._spilled:
                _, response, _, seconds, backend = self._spilled[key]
                found[key] = Cached(Completion(**json.loads(response)), seconds, backend)
        if damaged:
            self.damaged_rows += len(damaged)
            log.warning("%s: %d cached answers are damaged and will be requested again", self.path, len(damaged))
            try:  # so that the new answer is stored (INSERT OR IGNORE keeps a known key)
                with self._db:
                    self._db.executemany("DELETE FROM requests WHERE key = ?", [(k,) for k in damaged])
            except sqlite3.Error:
                pass
        return found

    def _insert(self, rows: list[tuple]) -> None:
        with self._db:  # one transaction: all of the batch or none of it
            self._db.executemany(
                "INSERT OR IGNORE INTO requests (key, response, created, seconds, backend) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def put_many(self, items: Iterable[tuple[str, Completion, float, str]]) -> None:
        """Commit (key, completion, its seconds, backend) rows in one transaction; when the
        database will not take them, keep them in a spill file and raise CacheWriteError."""
        now = time.time()
        rows = [
            (k, json.dumps(asdict(c), ensure_ascii=False), now, seconds, backend) for k, c, seconds, backend in items
        ]
        if not rows:
            return
        for attempt in range(self.attempts if self.unwritable is None else 0):
            try:
                self._insert(rows)
                return
            except sqlite3.Error as exc:
                self.unwritable = str(exc)
                if attempt + 1 < self.attempts:
                    time.sleep(0.5 * 2**attempt)
        spill = self._spill(rows)
        raise CacheWriteError(
            f"{self.path}: cannot store teacher answers ({self.unwritable}; {self.attempts} attempts); the "
            f"{len(self._spilled)} answers received are kept in {spill}, which a rerun reads: fix the cause "
            "and rerun"
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        self._db.close()
