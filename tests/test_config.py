import copy
import dataclasses
import os
import re
import typing

import pytest
import yaml

from cotdistill.core.config import ConfigError, Params, flatten, load_params, parse_params, to_dict

from .conftest import REPO, run_cmd, venv_bin


def test_committed_params_parse(repo_root):
    p = load_params(repo_root / "params.yaml")
    assert isinstance(p, Params)
    assert p.model == "t5-tiny" and p.dataset == "coin_flip" and p.teacher == "smollm2-135m"


def _sections(cls=Params):
    """Params and every dataclass nested in it."""
    yield cls
    for tp in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(tp):
            yield from _sections(tp)


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_params_yaml_is_the_one_place_values_are_set(base_params):
    # config.py declares types and ranges and no value, so nothing there can drift from params.yaml ...
    fields = [(cls, f) for cls in _sections() for f in dataclasses.fields(cls)]
    with_default = [
        f"{cls.__name__}.{f.name}"
        for cls, f in fields
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert with_default == []
    # ... and params.yaml sets every key: dropping any one fails, naming it
    leaves = list(_leaves(base_params))
    assert len(leaves) == sum(not dataclasses.is_dataclass(typing.get_type_hints(cls)[f.name]) for cls, f in fields)
    for key in leaves:
        data = copy.deepcopy(base_params)
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        del node[last]
        with pytest.raises(ConfigError, match=f"^params.yaml: missing key '{re.escape(key)}' "):
            parse_params(data)


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"model": "t5-tyny"}, "model: unknown student preset 't5-tyny' (did you mean 't5-tiny'?)"),
        ({"dataset": "gsm9k"}, "dataset: unknown dataset 'gsm9k'"),
        ({"teacher": "gpt5"}, "teacher: unknown teacher preset 'gpt5'"),
        ({"train": {"max_step": 3}}, "unknown key 'train.max_step' (did you mean 'max_steps'?)"),
        ({"trian": {}}, "unknown key 'trian' (did you mean 'train'?)"),
        ({"train": {"max_steps": -5}}, "train.max_steps: must be >= 1, got -5"),
        ({"train": {"max_steps": "10"}}, "train.max_steps: expected an integer, got '10'"),
        ({"train": {"max_steps": 2.5}}, "train.max_steps: expected an integer"),
        ({"train": {"learning_rate": "fast"}}, "train.learning_rate: expected a number or null"),
        ({"generate": {"answer_hint": "yes"}}, "generate.answer_hint: expected true or false"),
        ({"generate": {"top_p": 1.5}}, "generate.top_p: must be <= 1.0"),
        ({"filter": {"extraction": "loose"}}, "filter.extraction: got 'loose'; allowed: strict, flexible"),
        ({"prepare": {"coin_flip": {"min_people": 0}}}, "prepare.coin_flip.min_people: must be >= 1"),
        ({"prepare": {"coin_flip": {"min_people": 5, "max_people": 3}}}, "min_people must be <= max_people"),
        ({"seed": True}, "seed: expected an integer, got True"),
        # NaN passed every range (nan < lo is false) and .inf trained a NaN model (issue 22)
        ({"train": {"learning_rate": float("nan")}}, "train.learning_rate: must be a finite number, got nan"),
        ({"train": {"learning_rate": float("inf")}}, "train.learning_rate: must be a finite number, got inf"),
        ({"generate": {"top_p": float("nan")}}, "generate.top_p: must be a finite number, got nan"),
        ({"train": {"warmup_ratio": float("-inf")}}, "train.warmup_ratio: must be a finite number, got -inf"),
        ({"prepare": {"data_fraction": float("nan")}}, "prepare.data_fraction: must be a finite number"),
        ({"seed": -1}, "seed: must be >= 0, got -1"),
        ({"seed": 2**32}, "seed: must be <= 4294967295, got 4294967296"),
        ({"evaluate": []}, "evaluate: expected a mapping"),
        # a key in the URL passed, and the params (logged, tracked, versioned) carried it
        (
            {"teacher": "transformers-serve", "generate": {"base_url": "http://me:sk-in-url-123456@127.0.0.1:8000/v1"}},
            "generate.base_url: has credentials before the host (user:key@)",
        ),
    ],
)
def test_bad_values_name_the_key(base_params, patch, expected):
    data = copy.deepcopy(base_params)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            for k2, v2 in value.items():
                if isinstance(v2, dict):
                    data[key][k2] = {**data[key].get(k2, {}), **v2}
                else:
                    data[key][k2] = v2
        else:
            data[key] = value
    with pytest.raises(ConfigError) as err:
        parse_params(data, "params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: ") and "sk-in-url" not in str(err.value)


def test_flatten_for_mlflow(base_params):
    flat = flatten(to_dict(parse_params(base_params)))
    assert flat["train.max_steps"] == base_params["train"]["max_steps"]
    assert flat["prepare.coin_flip.max_people"] == 4
    assert all(not isinstance(v, dict) for v in flat.values())


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(
        ConfigError,
        match=r"p\.yaml: line 2, column 1: not valid YAML: expected ',' or ']', "
        r"but got '<stream end>'$",
    ):
        load_params(bad)  # one line: PyYAML's own message spans four, with a caret
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "missing.yaml")


def test_stage_rejects_bad_params_and_writes_nothing(tmp_path, repo_root, python, base_params):
    params = copy.deepcopy(base_params)
    params["train"]["max_steps"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "prepared"
    proc = run_cmd(
        [python, str(repo_root / "stages/prepare.py"), "--out", str(out), "--metrics", str(tmp_path / "m.json")],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: params.yaml: train.max_steps: must be >= 1, got -1"]
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_cli_check_params(tmp_path, base_params):
    params = copy.deepcopy(base_params)
    params["model"] = "t5-huge"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_cmd([venv_bin("cotdistill"), "check-params", "params.yaml"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "model: unknown student preset 't5-huge'" in proc.stderr
    assert "allowed: " in proc.stderr and "t5-xxl" in proc.stderr
    # a folder where the file belongs was a traceback (IsADirectoryError)
    proc = run_cmd([venv_bin("cotdistill"), "check-params", str(tmp_path)], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path}: is a folder; a file was expected here"


# Mistakes between keys (checks.py): each is refused by `cotdistill check-params`, by the
# pipeline's first stage and by every stage (one function), with one line and exit 2,
# before the teacher is paid.
CROSS_FIELD = [
    (
        {"threads": 4096},
        f"threads: 4096 torch threads, and this machine gives the process {len(os.sched_getaffinity(0))} CPU core(s)",
    ),
    (
        {"dataset": "gsm_symbolic", "filter": {"verify_steps": True}},
        "filter.verify_steps: no step checker for dataset 'gsm_symbolic'; datasets with one: coin_flip, last_letters, "
        "multistep_arith",
    ),
    (
        {"train": {"quantization": "8bit"}},
        "train.quantization: 8bit needs train.lora: true (model t5-tiny has lora off by default)",
    ),
    (
        {"model": "t5-xl", "train": {"lora": False}},
        "train.quantization: 8bit needs train.lora: true (model t5-xl has lora on by default)",
    ),
    (
        {"dataset": "svamp", "train": {"variants": ["answer", "gold"]}},
        "train.variants: 'gold' trains on the dataset's rationales, and dataset 'svamp' from source 'hub' has none "
        "(no source of it has one; a local file: prepare.local.rationale)",
    ),
    (
        {"evaluate": {"calculator": True}},
        "evaluate.calculator: true needs number answers; dataset 'coin_flip' has yes_no answers",
    ),
    (
        {"generate": {"num_samples": 4}},
        "generate.num_samples: 4 samples at generate.temperature 0 are the same greedy CoT each time",
    ),
    (
        {"generate": {"max_new_tokens": 12}},
        "generate.max_new_tokens: 12 tokens cannot hold a CoT like the exemplars shown (the shortest is 19 words",
    ),
    ({"train": {"launch": " "}}, "train.launch: empty"),
    (
        {"generate": {"prompt_format": "terse"}},
        "generate.prompt_format: coin_flip.yaml has no format 'terse'; "
        "allowed: default, echo, or null (the dataset's: echo)",
    ),
    ({"generate": {"shots": 9}}, "generate.shots: 9, but format 'echo' of coin_flip.yaml has 5 exemplars"),
    (
        {"model": "t5-small", "train": {"tokenizer": "char"}},
        "train.tokenizer: only students built from a config train a tokenizer (t5-tiny, t5-mini, t5-mini4, llama-tiny)",
    ),
    (
        {"model": "smollm2-135m", "train": {"tokenizer": "char"}},
        "train.tokenizer: only students built from a config train a tokenizer",
    ),
    ({"train": {"multitask_alpha": 1.5}}, "train.multitask_alpha: must be <= 1.0, got 1.5"),
    (
        {"teacher": "vllm-local", "generate": {"quantization": "4bit"}},
        "generate.quantization: only for teachers with backend hf; teacher 'vllm-local' has backend openai",
    ),
    ({"dataset": "coinflip"}, "dataset: unknown dataset 'coinflip' (did you mean 'coin_flip'?)"),
    ({"sedd": 1}, "unknown key 'sedd' (did you mean 'seed'?)"),
    ({"train": {"max_step": 5}}, "unknown key 'train.max_step' (did you mean 'max_steps'?)"),
    (
        {"dataset": "gsm8k", "prepare": {"source": "local"}},
        "prepare.local.path: required when prepare.source is 'local'",
    ),
]


@pytest.mark.parametrize("patch, expected", CROSS_FIELD, ids=[e.split(":")[0] for _, e in CROSS_FIELD])
def test_check_params_refuses_each_cross_field_mistake(tmp_path, base_params, patch, expected):
    from click.testing import CliRunner

    from cotdistill.cli import main

    from .conftest import _merge

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_merge(base_params, patch)))
    out = CliRunner().invoke(main, ["check-params", str(tmp_path / "p.yaml")])
    assert out.exit_code == 2
    (line,) = out.output.splitlines()
    assert line.startswith(f"error: {tmp_path / 'p.yaml'}: ") and expected in line


def test_what_the_checks_allow(base_params):
    from .conftest import _merge

    ok = [
        {
            "dataset": "svamp",
            "prepare": {"source": "local", "local": {"path": "x.csv", "rationale": "why"}},
            "train": {"variants": ["answer", "gold"]},
        },  # a local file with a rationale column
        {"dataset": "gsm8k", "evaluate": {"calculator": True}, "train": {"variants": ["answer", "cot", "gold"]}},
        {"generate": {"num_samples": 4, "temperature": 0.7}},
        {"model": "t5-xl"},  # LoRA on 8-bit weights by default
        {"model": "qwen2.5-1.5b"},  # LoRA on NF4 weights by default
        {"model": "llama-tiny", "train": {"tokenizer": "char", "variants": ["answer", "cot", "gold", "multitask"]}},
        {"generate": {"shots": 0, "max_new_tokens": 1}},
    ]
    for patch in ok:
        parse_params(_merge(base_params, patch))


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "",
            "p.yaml: empty; expected the keys model, dataset, teacher, seed, threads, prepare, generate, filter, "
            "train, evaluate",
        ),
        ("model: t5-tiny\nseed: 0\nseed: 1\n", "p.yaml: line 3: key 'seed' is given twice"),
        ("train:\n  max_steps: 3\n  max_steps: 4\n", "p.yaml: line 3: key 'max_steps' is given twice"),
    ],
)
def test_empty_files_and_repeated_keys_are_refused(tmp_path, text, expected):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "p.yaml")
    assert str(err.value) == f"{tmp_path / 'p.yaml'}: {expected.split(': ', 1)[1]}"


def test_stages_and_check_params_refuse_alike(tmp_path, base_params, python):
    """One validation function: the check stage prints what check-params prints."""
    data = copy.deepcopy(base_params)
    data["generate"]["num_samples"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    cli = run_cmd([venv_bin("cotdistill"), "check-params"], tmp_path, check=False)
    check = run_cmd([python, str(REPO / "stages/check.py"), "--out", "x.json"], tmp_path, check=False)
    assert cli.returncode == check.returncode == 2
    assert cli.stderr == check.stderr and len(check.stderr.splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_user_mistakes_are_one_line_and_bugs_show_their_traceback(capsys):
    from cotdistill.core import stage
    from cotdistill.core.errors import DataError

    def mistake(argv):
        raise DataError("x.jsonl:3: not valid JSON (Expecting value)")

    with pytest.raises(SystemExit) as exit_:
        stage.run(mistake, [])
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: x.jsonl:3: not valid JSON (Expecting value)\n"

    def bug(argv):  # a ValueError from deep in torch or in our own code is no user mistake
        raise ValueError("shape mismatch: value tensor of shape [8] cannot be broadcast")

    with pytest.raises(ValueError, match="shape mismatch"):
        stage.run(bug, [])


def test_a_missing_input_is_one_line(tmp_path, python):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = run_cmd(
        [
            python,
            str(REPO / "stages/filter.py"),
            "--prepared",
            "prepared",
            "--generations",
            "gens.jsonl",
            "--out",
            "filtered",
            "--metrics",
            "filter.json",
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: gens.jsonl: file not found"
