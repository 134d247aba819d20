"""Mistakes a user can fix: bad params, bad or missing data. A stage prints one line
for them and exits 2 (stage.run); an outage of a service the stage needs is one line and
exit 1; every other exception is a bug and shows its traceback."""

from __future__ import annotations

import sys
from typing import NoReturn


class UserError(Exception):
    """A mistake in what the user gave (params, data, files); the message says which and how to fix it."""


class ConfigError(UserError, ValueError):
    """Bad params: the message names the file, the key and what is allowed."""


class DataError(UserError, ValueError):
    """Bad or missing input data: the message names the file (and line) and what is wrong."""


class Outage(RuntimeError):
    """A service the stage needs kept failing (a teacher server, after every retry): not the
    user's mistake, and a rerun resumes once it is back. One line, exit 1 (stage.run)."""


class ResourceError(UserError):
    """Something this machine lacks for the params: a checkpoint or dataset that is neither
    local nor reachable, or the memory to train; the message says what would do instead."""


def yaml_error(path, exc: Exception) -> str:
    """One line for a file PyYAML could not parse: `path: line L, column C: not valid YAML:
    problem` (PyYAML's own message spans several lines, an excerpt with a caret)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: not valid YAML: {' '.join(problem.split())}"


def exit_with(message: str, code: int = 2) -> NoReturn:
    """End the process with one line on stderr, `error: <message>`: how every command and
    stage ends on what the user can act on (exit 2: their mistake; 1: an outage, a full disk)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
