"""A persistent request cache for teacher calls, in SQLite.

Keyed by a SHA-256 of (backend identity incl. model, full prompt, sampling params,
sample index), so a rerun with the same settings finds every answer it already paid
for. Each row also keeps what it cost when it was made (its tokens, its share of the
seconds of the call that answered it, the backend), so that a run answered from the
cache still reports what its generations cost. SQLite's journal makes each committed batch durable and atomic: a kill -9 loses
at most the requests in flight, never corrupts what was committed. WAL mode and a busy
timeout let several processes (parallel `dvc queue` workers) read and write the same
file; INSERT OR IGNORE makes a request answered twice by two writers harmless.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

from . import Completion, Sampling


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
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0)
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

    def get_many(self, keys: list[str]) -> dict[str, Cached]:
        """The cached completions among `keys` (one query per chunk, not per key)."""
        found: dict[str, Cached] = {}
        for b in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
            chunk = keys[b : b + 500]
            marks = ",".join("?" * len(chunk))
            for key, response, seconds, backend in self._db.execute(
                f"SELECT key, response, seconds, backend FROM requests WHERE key IN ({marks})", chunk
            ):
                found[key] = Cached(Completion(**json.loads(response)), seconds, backend)
        return found

    def put_many(self, items: Iterable[tuple[str, Completion, float, str]]) -> None:
        """Commit (key, completion, its seconds, backend) rows in one transaction."""
        now = time.time()
        rows = [(k, json.dumps(asdict(c), ensure_ascii=False), now, seconds, backend)
                for k, c, seconds, backend in items]
        with self._db:  # one transaction: all of the batch or none of it
            self._db.executemany(
                "INSERT OR IGNORE INTO requests (key, response, created, seconds, backend) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        self._db.close()
