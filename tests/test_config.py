import copy

import pytest
import yaml

from cotdistill.config import ConfigError, Params, flatten, load_params, parse_params, to_dict

from .conftest import run_cmd, venv_bin


def test_committed_params_parse(repo_root):
    p = load_params(repo_root / "params.yaml")
    assert isinstance(p, Params)
    assert p.model == "t5-tiny" and p.dataset == "coin_flip" and p.teacher == "smollm2-135m"


def test_defaults_are_defined_once():
    # An empty file is valid: every section has defaults.
    p = parse_params({})
    assert p.train.max_steps == Params().train.max_steps


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
        ({"evaluate": []}, "evaluate: expected a mapping"),
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
    assert str(err.value).startswith("params.yaml: ")


def test_flatten_for_mlflow():
    flat = flatten(to_dict(Params()))
    assert flat["train.max_steps"] == Params().train.max_steps
    assert flat["prepare.coin_flip.max_people"] == 4
    assert all(not isinstance(v, dict) for v in flat.values())


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="p.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "missing.yaml")


def test_stage_rejects_bad_params_and_writes_nothing(tmp_path, repo_root, python, base_params):
    params = copy.deepcopy(base_params)
    params["train"]["max_steps"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "prepared"
    proc = run_cmd([python, str(repo_root / "stages/prepare.py"), "--out", str(out), "--metrics",
                    str(tmp_path / "m.json")], cwd=tmp_path, check=False)
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
