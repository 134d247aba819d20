"""The DAG tells the truth: every stage's dvc.yaml deps cover exactly the project code it runs.

A stage runs its script, every module of stages/ that the script imports (_checkout.py),
and every `cotdistill` module that it imports, directly or through other modules, at the
top of a file or inside a function (a function-level import runs when the stage takes that
path). That set is read statically from the imports here, and held against the stage's
deps: a module that no dep covers means a code change that does not rerun the stage (stale
outputs), and a code dep that the stage never loads means a change that reruns it for nothing.
"""

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

from .conftest import REPO

SRC = REPO / "src"
STAGES_DIR = REPO / "stages"
PACKAGE = "cotdistill"


def module_file(name: str) -> Path | None:
    """The file of module `name` (a dotted name under src/), or None if it is not ours."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> str:
    """The dotted package a file's relative imports start from."""
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1])


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports (with every package on the way: importing a.b.c runs
    a/__init__, a/b/__init__ and a/b/c), ours only."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _package_of(path) if path.is_relative_to(SRC) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from pkg import name`: name may be a submodule
            names.update(f"{base}.{a.name}" for a in node.names)
    out = set()
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if module_file(prefix):
                out.add(prefix)
    return out


def sibling_modules(path: Path) -> set[Path]:
    """The modules of its own folder that a script imports (`import _checkout` in stages/x.py:
    Python puts a script's folder first on sys.path); none for a module of src/."""
    if path.is_relative_to(SRC):
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return {f for f in (path.parent / f"{n.split('.')[0]}.py" for n in names) if f.is_file() and f != path}


@lru_cache(maxsize=None)
def loaded_files(script: Path) -> frozenset[Path]:
    """Every project file that running `script` can load: the script and, transitively, the
    modules of its folder and the cotdistill modules it imports."""
    seen: set[Path] = {script}
    todo = [script]
    while todo:
        path = todo.pop()
        for f in sibling_modules(path) | {module_file(name) for name in imported_modules(path)}:
            if f not in seen:
                seen.add(f)
                todo.append(f)
    return frozenset(seen)


def dvc_stages() -> list[tuple[str, str, list[str]]]:
    """(name, cmd, deps) of every stage of dvc.yaml, as DVC resolves it from params.yaml."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return [(s.addressing, s.cmd, [d.def_path for d in s.deps]) for s in repo.index.stages]


def _covers(dep: str, rel: str) -> bool:
    return rel == dep or rel.startswith(dep.rstrip("/") + "/")


def _is_code(rel: str) -> bool:
    return rel.startswith("stages/") or (
        rel.startswith("src/cotdistill/") and not rel.startswith("src/cotdistill/generate/prompts/")
    )


def check_stage(cmd: str, deps: list[str]) -> tuple[list[str], list[str]]:
    """(loaded files that no dep covers, code deps that cover no loaded file)."""
    script = re.search(r"\bstages/\w+\.py\b", cmd)
    assert script, f"no stage script in {cmd!r}"
    loaded = sorted(str(p.relative_to(REPO)) for p in loaded_files(REPO / script.group(0)))
    uncovered = [rel for rel in loaded if not any(_covers(d, rel) for d in deps)]
    unused = []
    for dep in deps:
        if not _is_code(dep):
            continue
        inside = [p for p in (REPO / dep).rglob("*.py")] if (REPO / dep).is_dir() else [REPO / dep]
        # a folder dep must be loaded whole, else a change to one of its files reruns the stage for nothing
        idle = [str(p.relative_to(REPO)) for p in inside if str(p.relative_to(REPO)) not in loaded]
        unused += idle
    return uncovered, unused


STAGES = dvc_stages()


@pytest.mark.parametrize("name, cmd, deps", STAGES, ids=[s[0] for s in STAGES])
def test_stage_deps_match_the_code_it_runs(name, cmd, deps):
    twice = sorted({d for d in deps if deps.count(d) > 1})
    assert not twice, f"{name} lists {twice} twice in its deps (dvc.lock would record them twice)"
    uncovered, unused = check_stage(cmd, deps)
    assert not uncovered, f"{name} runs {uncovered}, which its dvc.yaml deps do not list"
    assert not unused, f"{name} lists {unused} in its deps but never loads them"


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    # filter reaches the multistep checker's question grammar only inside a function of steps/arithmetic.py
    filt = {str(p.relative_to(REPO)) for p in loaded_files(REPO / "stages/filter.py")}
    assert (
        "src/cotdistill/prepare/datasets/arithmetic.py" in filt and "src/cotdistill/filter/steps/arithmetic.py" in filt
    )
    # generate loads the backends through the registry's lazy imports, the filter's checks
    # (verified sampling's stop rule), and never a student
    gen = {str(p.relative_to(REPO)) for p in loaded_files(REPO / "stages/generate.py")}
    assert {"src/cotdistill/generate/teachers/hf_local.py", "src/cotdistill/generate/teachers/openai_compat.py"} <= gen
    assert "src/cotdistill/filter/filtering.py" in gen
    assert not any(p.startswith(("src/cotdistill/train/", "src/cotdistill/evaluate/")) for p in gen)


def test_an_unlisted_import_is_caught(tmp_path):
    """What the deps test says when a stage starts to import a module that its deps miss."""
    script = REPO / "stages/report.py"
    patched = tmp_path / "report.py"
    patched.write_text(
        script.read_text().replace(
            "from cotdistill.core import stage\n",
            "from cotdistill.core import stage\nimport cotdistill.text.calculator\n",
        )
    )
    ((name, cmd, deps),) = [s for s in STAGES if s[0] == "report"]
    uncovered = sorted(
        str(p.relative_to(REPO))
        for p in loaded_files(patched)
        if p != patched and not any(_covers(d, str(p.relative_to(REPO))) for d in deps)
    )
    # the package's __init__.py runs too: it is a dep of whatever imports from the package
    assert uncovered == ["src/cotdistill/text/__init__.py", "src/cotdistill/text/calculator.py"]


def test_the_walk_follows_a_stage_into_its_own_folder():
    # every stage script imports stages/_checkout.py (which puts its checkout's src/ first on sys.path)
    for script in sorted(STAGES_DIR.glob("[!_]*.py")):
        assert STAGES_DIR / "_checkout.py" in loaded_files(script), script.name


@pytest.mark.parametrize("script", sorted(p.name for p in STAGES_DIR.glob("[!_]*.py")))
def test_a_stage_runs_the_package_of_its_own_checkout(tmp_path, script):
    """A queued `dvc exp run` runs the stages in a temporary copy of the repository: they
    must import that copy's `cotdistill`, not the installed one (an editable install points
    at the main workspace, whose code may have changed since the experiment was queued)."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages")
    shutil.copytree(SRC, copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    # what `python copy/stages/<script>` does: the script's folder first on sys.path (runpy alone
    # does not put it there), the installed package still importable behind it
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(copy / 'stages' / script)!r}, '--help']\n"
        f"sys.path.insert(0, {str(copy / 'stages')!r})\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "import cotdistill\nprint('PACKAGE', cotdistill.__file__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    package = [line for line in proc.stdout.splitlines() if line.startswith("PACKAGE ")]
    assert package and Path(package[-1].split(" ", 1)[1]).is_relative_to(copy / "src"), proc.stdout + proc.stderr
