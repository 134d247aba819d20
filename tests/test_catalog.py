"""The catalog's plain tables name exactly what the implementations behind them provide."""

import ast

from cotdistill.core import catalog
from cotdistill.core.catalog.datasets import DATASETS, SOURCES
from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.catalog.teachers import TEACHERS


def _with(source):
    return {n for n, d in DATASETS.items() if source in d.sources}


def test_every_dataset_source_has_its_loader():
    from cotdistill.prepare.datasets import real
    from cotdistill.prepare.datasets.prepare import SOURCES as LOADERS
    from cotdistill.prepare.datasets.synthetic import GENERATORS

    assert set(LOADERS.names()) == set(SOURCES)
    assert set(GENERATORS.names()) == _with("synthetic")
    assert set(real.HUB) == _with("hub") and set(real.PACKAGED) == _with("packaged")
    assert _with("local") == _with("hub")  # every loaded dataset also reads a local file
    for name, info in DATASETS.items():
        assert info.default_source in info.sources and set(info.rationale_sources) <= set(info.sources), name


def test_step_checkers_variants_architectures_and_backends_match_their_names():
    from cotdistill.filter.steps import STEP_CHECKERS
    from cotdistill.generate.teachers.backends import BACKENDS
    from cotdistill.train.students.architectures import ARCHITECTURES
    from cotdistill.train.variants import VARIANTS

    assert set(STEP_CHECKERS.names()) == {n for n, d in DATASETS.items() if d.step_checker}
    assert tuple(VARIANTS.names()) == catalog.VARIANTS
    assert {s.architecture for _, s in STUDENTS.items()} == set(ARCHITECTURES.names())
    assert {t.backend for _, t in TEACHERS.items()} == set(BACKENDS.names())
    assert {s.quantization for _, s in STUDENTS.items()} <= set(catalog.QUANTIZATIONS)


def test_params_validation_loads_no_implementation():
    """Validating params imports the tables, not the loaders, models or backends."""
    import subprocess
    import sys

    code = (
        "import sys; from cotdistill.core.config import load_params; load_params('params.yaml'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cotdistill', 'torch', 'transformers')))"
    )
    from .conftest import REPO

    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    loaded = ast.literal_eval(out)
    assert loaded == [
        "cotdistill",
        "cotdistill.core",
        "cotdistill.core.catalog",
        "cotdistill.core.catalog.datasets",
        "cotdistill.core.catalog.prompts",
        "cotdistill.core.catalog.students",
        "cotdistill.core.catalog.teachers",
        "cotdistill.core.checks",
        "cotdistill.core.config",
        "cotdistill.core.errors",
        "cotdistill.core.io",  # the one file reader
        "cotdistill.core.registry",
    ]  # and no torch
