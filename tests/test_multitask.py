"""The multitask variant (distilling step-by-step): its rows, its batches (both tasks of
every question, 1:1), its loss (alpha * label + (1 - alpha) * rationale), for T5 and
causal students, and its report table."""

import json
from types import SimpleNamespace

import pytest
import torch

from cotdistill.core.catalog.students import STUDENTS
from cotdistill.train.students.architectures import ARCHITECTURES
from cotdistill.train.students.batches import pad_rows, task_losses, training_data, weighted_loss
from cotdistill.train.students.causal import load_student as load_causal
from cotdistill.train.students.t5 import load_student as load_t5
from cotdistill.train.students.training import NOT_TRAINING, resolve
from cotdistill.train.variants import SETTINGS_FILE, VARIANTS, variant_rows

from .conftest import section

PREPARED = [
    {"id": "a", "question": "Is it up?", "answer": "yes"},
    {"id": "b", "question": "And now?", "answer": "no"},
    {"id": "c", "question": "Dropped by the filter?", "answer": "yes"},
]
KEPT = [
    {"id": "a", "question": "Is it up?", "answer": "yes", "target": "Nobody flipped it. The answer is yes."},
    {"id": "b", "question": "And now?", "answer": "no", "target": "Bo flipped it once. The answer is no."},
]
TEXTS = [f"A coin is heads up. P{i} flips the coin. Is the coin still heads up? The answer is no." for i in range(20)]


def test_rows_hold_both_tasks_of_each_kept_cot(tmp_path):
    rows = variant_rows("multitask", PREPARED, KEPT)
    assert rows == [
        {
            "id": "a",
            "question": "Is it up?",
            "answer": "yes",
            "target": "yes",
            "rationale": "Nobody flipped it. The answer is yes.",
        },
        {
            "id": "b",
            "question": "And now?",
            "answer": "no",
            "target": "no",
            "rationale": "Bo flipped it once. The answer is no.",
        },
    ]  # c: no kept CoT, no label row either
    multitask = VARIANTS.get("multitask")
    assert multitask.examples(rows)[1] == ("And now?", "no", "Bo flipped it once. The answer is no.")
    label, rationale = multitask.tasks
    assert label.source("Q?") == "[label] Q?" and rationale.source("Q?") == "[rationale] Q?"
    written = multitask.settings(SimpleNamespace(multitask_alpha=0.3))
    assert written == {"multitask_alpha": 0.3, "prefixes": {"label": "[label] ", "rationale": "[rationale] "}}
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(written))
    settings = multitask.read_settings(tmp_path)
    assert settings == {"multitask_alpha": 0.3} and multitask.weights(settings) == (0.3, 0.7)
    assert "multitask_alpha" in NOT_TRAINING  # a new alpha retrains the multitask student alone


def _students():
    t5 = STUDENTS.get("t5-mini")
    llama = STUDENTS.get("llama-tiny")
    return {"t5": (*load_t5(t5, TEXTS, seed=0), t5), "causal": (*load_causal(llama, TEXTS, seed=0), llama)}


@pytest.fixture(scope="module")
def students():
    torch.set_num_threads(1)
    return _students()


MULTITASK = VARIANTS.get("multitask")
QUESTIONS = [
    (
        f"Is coin {i} still heads up?",
        "yes" if i % 2 else "no",
        f"P{i} {'does not flip' if i % 2 else 'flips'} it. The answer is {'yes' if i % 2 else 'no'}.",
    )
    for i in range(10)
]


@pytest.mark.parametrize("arch", ["t5", "causal"])
def test_a_batch_holds_both_tasks_of_every_question_one_to_one(students, arch):
    model, tok, preset = students[arch]
    cfg = resolve(section("train"), preset)
    data = training_data(
        tok, model, QUESTIONS, QUESTIONS[:2], cfg, ARCHITECTURES.get(arch), MULTITASK.tasks, (0.5, 0.5)
    )
    assert len(data.train) == len(QUESTIONS) and len(data.validation) == 2  # one row per question
    batch = data.collator([data.train[i] for i in range(4)])
    task = batch["task"].tolist()
    assert task == [0] * 4 + [1] * 4  # label rows, then rationale rows: the stated 1:1 ratio
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 8
    text = tok.batch_decode(batch["input_ids"], skip_special_tokens=True)
    labels = [tok.decode([t for t in row if t != -100], skip_special_tokens=True) for row in batch["labels"].tolist()]
    for i in range(4):  # row i and row 4 + i: the same question, its label and its rationale task
        q, answer, rationale = QUESTIONS[i]
        assert "[label] " + q in text[i] and "[rationale] " + q in text[4 + i]
        assert labels[i].strip() == answer and labels[4 + i].strip() == rationale
    # every row is of similar length to its group: the Trainer's length-grouped sampler reads `length`
    assert data.train[0]["length"] == sum(
        len(data.train[0][k]) for k in ("input_ids", "labels", "rationale_input_ids", "rationale_labels")
    )


@pytest.mark.parametrize("arch", ["t5", "causal"])
@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_multitask_loss_is_alpha_label_plus_one_minus_alpha_rationale(students, arch, alpha):
    model, tok, preset = students[arch]
    cfg = resolve(section("train"), preset)
    weights = MULTITASK.weights({"multitask_alpha": alpha})
    data = training_data(tok, model, QUESTIONS, [], cfg, ARCHITECTURES.get(arch), MULTITASK.tasks, weights)
    assert data.weights == (alpha, 1 - alpha)
    features = [data.train[i] for i in range(3)]
    batch = data.collator(features)
    task = batch.pop("task")
    with torch.no_grad():
        loss = weighted_loss(model(**batch).logits, batch["labels"], task, weights, ARCHITECTURES.get(arch).align)
        # each task alone, as its own batch, through the model's own (token-mean) loss
        label = model(**pad_rows(features, tok.pad_token_id)).loss
        rationale = model(
            **pad_rows(
                [{"input_ids": f["rationale_input_ids"], "labels": f["rationale_labels"]} for f in features],
                tok.pad_token_id,
            )
        ).loss
    assert torch.allclose(loss, alpha * label + (1 - alpha) * rationale, atol=1e-4)
    assert not torch.allclose(label, rationale)


def test_task_losses_count_each_task_over_its_own_tokens():
    logits = torch.zeros(2, 3, 4)  # uniform: every counted token costs log 4
    logits[1, :, 2] = 10.0  # the rationale row is sure of token 2
    labels = torch.tensor([[1, -100, -100], [2, 2, 2]])
    label, rationale = task_losses(logits, labels, torch.tensor([0, 1]), 2, ARCHITECTURES.get("t5").align)
    assert torch.isclose(label, torch.log(torch.tensor(4.0))) and rationale < 1e-3
    # causal: position t predicts token t + 1, so the first label is never counted
    label_c, _ = task_losses(
        logits, torch.tensor([[1, 3, -100], [2, 2, 2]]), torch.tensor([0, 1]), 2, ARCHITECTURES.get("causal").align
    )
    assert torch.isclose(label_c, torch.log(torch.tensor(4.0)))


def test_report_shows_the_rationale_task():
    from cotdistill.report.reporting import render_report

    from .conftest import make_params

    params = make_params({"train": {"variants": ["answer", "multitask"]}})
    m = {"accuracy": 0.5, "ci95_low": 0.4, "ci95_high": 0.6, "n": 10, "invalid_rate": 0.0}
    evals = [
        {"variant": "answer", "id": m},
        {"variant": "multitask", "id": m, "rationale": {"id": {**m, "accuracy": 0.25}}},
    ]
    report = render_report(params, evals, {"kept": 1, "generations": 2, "keep_rate": 0.5, "dropped_by_reason": {}})
    assert "| coin_flip | multitask | 10 | 50.0 [40.0, 60.0] |" in report
    assert "## The multitask student's rationale task" in report
    assert "| coin_flip | multitask | rationale | 25.0 [40.0, 60.0] |" in report
