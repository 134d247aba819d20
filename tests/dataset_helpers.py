"""Helpers shared by the dataset tests: offline `datasets`, fixture writers, tiny archives."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import make_params


@pytest.fixture(autouse=True)
def offline_hf(monkeypatch, tmp_path):
    """No test may reach the Hub; `datasets` caches its local-file builds in tmp."""
    import datasets.config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)

    def no_download(args):
        raise AssertionError(f"a test tried to run pip {' '.join(args)}")

    monkeypatch.setattr("cotdistill.prepare.datasets.packaged._run_pip", no_download)


def params(dataset, **prepare):
    base = {"n_train": 100, "n_validation": 2, "n_test": 3, "n_test_ood": 0}
    return make_params({"dataset": dataset, "prepare": {**base, **prepare}})


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def hub_fixture(tmp_path, splits: dict[str, list[dict]]) -> dict[str, str]:
    return {name: write_parquet(tmp_path / f"{name}-00000-of-00001.parquet", rows) for name, rows in splits.items()}


NAMES = "Natalia Weng Betty Julie James Albert Ken Alexis Tina Mark Joy Randy Sam Lee Ola Pia".split()
THINGS = "clips pens apples stamps cards books shells coins beads cups kites balls hats mugs rocks toys".split()


def question(i):
    """Distinct questions: no two share a 13-gram, so decontamination keeps them all."""
    name, thing = NAMES[i % 16], THINGS[(i * 7 + 3) % 16]
    return f"{name} has {i + 3} {thing}. How many {thing} does {name} own after buying {i + 5} more?"


def make_zip(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def make_targz(path, top, members: dict[str, str]):
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
