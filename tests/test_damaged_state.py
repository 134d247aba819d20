"""Pay once, keep always (issue 22): a request cache that will not take answers (locked
past its busy timeout, full, its spill file unwritable) keeps every answer received in
a spill file that the rerun reads; a damaged cache file or row is one line or a miss,
never a traceback or a lost answer."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from cotdistill.core.errors import DataError
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.cache import CacheWriteError, RequestCache
from cotdistill.generate.teachers.generation import generate_all

from .fault_helpers import OK_TEXT, StubTeacher
from .test_hostile_server import backend_for

PROMPTS = [f"Q: Is coin {i} heads up?\nA:" for i in range(6)]


@pytest.fixture
def server():
    stub = StubTeacher("ok")
    yield stub
    stub.close()


def generate(server, cache):
    return generate_all(backend_for(server, api_key_env=None), PROMPTS, Sampling(16), cache, 4, 1, progress=False)


def assert_rerun_is_free(server, path):
    """Reopened, the cache serves every answer paid for, and nothing is sent again."""
    sent = len(server.requests)
    results, stats = generate(server, RequestCache(path))
    assert stats.cache_hits == len(PROMPTS) and stats.sent == 0 and len(server.requests) == sent
    assert [r[0].text for r in results] == [OK_TEXT.strip()] * len(PROMPTS)


def test_a_cache_locked_past_its_timeout_keeps_the_answers_in_a_spill_file(server, tmp_path):
    path = tmp_path / "requests.sqlite"
    cache = RequestCache(path, busy_timeout_s=0.2, attempts=2)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than the timeout
    with pytest.raises(CacheWriteError) as err:
        generate(server, cache)
    line = str(err.value)
    spill = path.with_name("requests.sqlite.pending.jsonl")
    assert line.startswith(f"{path}: cannot store teacher answers (database is locked; 2 attempts); the ")
    assert f"are kept in {spill}, which a rerun reads" in line and "\n" not in line
    paid = len(server.requests)
    kept = {json.loads(line)[0] for line in spill.read_text().splitlines()}
    assert paid >= 1 and len(kept) == paid  # every answer received, those in flight too
    holder.rollback()
    holder.close()
    cache.close()
    reopened = RequestCache(path)
    assert len(reopened) == paid and not spill.exists()  # moved into the database
    results, stats = generate(server, reopened)
    assert stats.cache_hits == paid and stats.sent == len(PROMPTS) - paid
    assert_rerun_is_free(server, path)


def test_a_full_cache_and_a_full_folder_spill_to_tmpdir(server, tmp_path, monkeypatch):
    path = tmp_path / "requests.sqlite"
    cache = RequestCache(path, attempts=1)
    with cache._db:  # the table's page nearly full, and no page to be had: SQLITE_FULL, as on a full disk
        cache._db.execute("INSERT INTO requests VALUES ('filler', ?, 0, NULL, NULL)", ("x" * 3900,))
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count = {pages}")
    path.with_name("requests.sqlite.pending.jsonl").mkdir()  # and the folder takes no spill file
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    with pytest.raises(CacheWriteError) as err:
        generate(server, cache)
    assert "database or disk is full" in str(err.value) and str(tmp_path / "tmp") in str(err.value)
    cache.close()
    path.with_name("requests.sqlite.pending.jsonl").rmdir()
    assert_rerun_is_free_after_paid(server, path)


def assert_rerun_is_free_after_paid(server, path):
    paid = len(server.requests)
    results, stats = generate(server, RequestCache(path))
    assert stats.cache_hits == paid and stats.sent == len(PROMPTS) - paid
    assert_rerun_is_free(server, path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "a folder"])
def test_a_damaged_cache_file_is_one_line_that_says_what_to_do(server, tmp_path, damage):
    path = tmp_path / "requests.sqlite"
    cache = RequestCache(path)
    generate(server, cache)
    cache.close()  # the last connection checkpoints the WAL into the file
    data = path.read_bytes()
    if damage == "a folder":  # a bad copy or mount left a directory of that name
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(b"this is not a database\n" * 200 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        generate(server, RequestCache(path))
    assert str(err.value).startswith(f"{path}: the teacher's request cache cannot be read (")
    assert str(err.value).endswith(
        f"move it aside (mv {path} {path}.damaged) and rerun: what it held is requested again"
    )


def test_a_damaged_row_is_requested_again_and_replaced(server, tmp_path):
    path = tmp_path / "requests.sqlite"
    generate(server, RequestCache(path))
    db = sqlite3.connect(path)
    db.execute("UPDATE requests SET response = '{\"text\": broken' WHERE rowid = 1")
    db.commit()
    db.close()
    cache = RequestCache(path)
    results, stats = generate(server, cache)
    assert stats.cache_hits == len(PROMPTS) - 1 and stats.sent == 1 and cache.damaged_rows == 1
    assert [r[0].text for r in results] == [OK_TEXT.strip()] * len(PROMPTS)
    assert_rerun_is_free(server, path)


def test_a_spill_line_cut_by_a_crash_costs_only_its_own_request(server, tmp_path):
    path = tmp_path / "requests.sqlite"
    generate(server, RequestCache(path))
    shutil.copy(path, tmp_path / "full.sqlite")
    db = sqlite3.connect(path)
    rows = db.execute("SELECT key, response, created, seconds, backend FROM requests").fetchall()
    db.execute("DELETE FROM requests")
    db.commit()
    db.close()
    lines = [json.dumps(list(r)) for r in rows]
    path.with_name("requests.sqlite.pending.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30])
    sent = len(server.requests)
    results, stats = generate(server, RequestCache(path))
    assert stats.cache_hits == len(PROMPTS) - 1 and len(server.requests) == sent + 1


def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_whole_one(tmp_path, caplog):
    """A truncated model.safetensors in the newest checkpoint blocked every rerun with a
    SafetensorError; the older good checkpoint was never tried."""
    import torch
    from safetensors.torch import save_file

    from cotdistill.train.students.training import last_complete_checkpoint

    for step in (5, 10, 15):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        save_file({"w": torch.zeros(64, 64)}, str(folder / "model.safetensors"))
        torch.save({"state": torch.zeros(64)}, folder / "optimizer.pt")
        (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-20").mkdir()  # a save killed midway: no trainer_state.json
    weights = tmp_path / "checkpoint-15/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:9000])
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert f"{tmp_path / 'checkpoint-15'} is damaged (model.safetensors: " in caplog.text
    optimizer = tmp_path / "checkpoint-10/optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-5")
    assert "optimizer.pt is not a complete torch file" in caplog.text
    # a cut trainer_state.json was taken for whole, and the resume died on its JSON
    (tmp_path / "checkpoint-5/trainer_state.json").write_text('{"global_st')
    assert last_complete_checkpoint(tmp_path) is None
    assert "checkpoint-5 is damaged (trainer_state.json: Unterminated string" in caplog.text


def test_a_student_whose_loss_is_not_finite_stops_in_one_line_and_saves_nothing(tmp_path):
    """`learning_rate: .inf` trained a NaN model that evaluate then scored 0.0 as if it were a
    result; .inf is now refused by the check, and a finite rate that blows up stops here."""
    from .conftest import REPO
    from .fault_helpers import error_lines
    from .test_students_stage import env_for, train_args, write_inputs

    write_inputs(tmp_path, n_train=16, learning_rate=1e30, max_steps=6, logging_steps=1, save_steps=6)
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path, "answer")],
        cwd=tmp_path,
        env={**os.environ, **env_for(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = error_lines(proc.stderr)
    assert line.startswith("error: train: the ") and "(train.learning_rate = 1e+30): the student diverged" in line
    assert not (tmp_path / "models/answer").exists() and not (tmp_path / "metrics/answer.json").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_mlflow_store_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, damage):
    from cotdistill.core import tracking

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setattr(tracking, "_READY", set())
    if damage == "garbage":
        db.write_bytes(b"not a database\n" * 500)
    else:  # a real store, made by another process (MLflow caches the stores it opened), cut in half
        subprocess.run([sys.executable, "-c", "from cotdistill.core import tracking; tracking._client()"], check=True)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        tracking._client()
    assert str(err.value).startswith(f"{db}: the MLflow store cannot be read (")
    assert str(err.value).endswith(
        f"move it aside (mv {db} {db}.damaged) and rerun: a new store is made, "
        "and the runs in the old one are not in it"
    )


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted on tmp_path/ckpt (root only): a disk that fills as a real one does."""
    folder = tmp_path / "ckpt"
    folder.mkdir()

    def mount(size: str, remount: bool = False) -> None:
        opts = f"remount,size={size}" if remount else f"size={size}"
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True)
        if proc.returncode and not remount:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        assert proc.returncode == 0, proc.stderr

    yield mount
    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("size, saved", [("6m", 0), ("10m", 2)])
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_rerun_resumes(tmp_path, small_disk, size, saved):
    """6 MB fill up inside optimizer.pt of the first checkpoint (torch's writer said
    'RuntimeError: unexpected pos', a traceback), 10 MB inside the second's. The half-written
    folder is removed, and with space freed the rerun resumes from the last whole one."""
    from .conftest import REPO
    from .fault_helpers import error_lines
    from .test_students_stage import env_for, timings, train_args, write_inputs

    write_inputs(tmp_path, n_train=16, max_steps=4, logging_steps=1, save_steps=2)
    small_disk(size)
    cmd = [sys.executable, str(REPO / "stages/train.py"), *train_args(tmp_path, "answer")]
    env = {**os.environ, **env_for(tmp_path)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = error_lines(proc.stderr)
    failed = saved + 2
    assert line.startswith("error: no space left on the device writing ") and line.split(" (")[0].endswith(
        f"/checkpoint-{failed}"
    ), line
    assert [p.name for p in (tmp_path / "ckpt").glob("*/checkpoint-*")] == ([f"checkpoint-{saved}"] if saved else [])
    assert not (tmp_path / "models/answer").exists()

    small_disk("64m", remount=True)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert timings(tmp_path, "answer").get("resumed_from_step", 0) == saved
    assert json.loads((tmp_path / "metrics/answer.json").read_text())["steps"] == 4
