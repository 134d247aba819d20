"""The one prompt builder: few-shot CoT prompts from per-dataset prompt files.

A prompt file (src/cotdistill/generate/prompts/<dataset>.yaml) holds an instruction and
exemplars (question, answer, rationale ending in "The answer is X."). With
`answer_hint` (the paper's answer-conditioned prompting) every block shows the correct
answer before the reasoning, so the teacher explains a known answer instead of
guessing one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from cotdistill.core.catalog.prompts import (  # noqa: F401  (prompt_path, resolve_format: re-exported)
    DEFAULT_FORMAT,
    prompt_path,
    read_formats,
    resolve_format,
)
from cotdistill.core.config import ExemplarDraw
from cotdistill.core.errors import DataError
from cotdistill.text.sentence import answer_sentence

# The teacher's completion ends where the next block would begin.
STOP_STRINGS = ("\n\nQuestion:", "\nQuestion:", "\n\n")


@dataclass(frozen=True)
class Exemplar:
    question: str
    answer: str
    rationale: str


@dataclass(frozen=True)
class PromptFile:
    path: Path
    instruction: str
    exemplars: tuple[Exemplar, ...]


def _exemplars(path: Path, items: list, where: str) -> tuple[Exemplar, ...]:
    exemplars = []
    for i, ex in enumerate(items):
        missing = {"question", "answer", "rationale"} - set(ex or {})
        if missing:
            raise DataError(f"{path}: {where}[{i}]: missing {', '.join(sorted(missing))}")
        ex = {k: str(v).strip() for k, v in ex.items()}
        if not ex["rationale"].endswith(answer_sentence(ex["answer"])):
            raise DataError(f"{path}: {where}[{i}]: rationale must end with '{answer_sentence(ex['answer'])}'")
        exemplars.append(Exemplar(ex["question"], ex["answer"], ex["rationale"]))
    return tuple(exemplars)


def format_names(path: str | Path) -> list[str]:
    """The prompt formats a file offers: `default` (its top-level exemplars) and the
    names under its optional `formats:` key."""
    return list(read_formats(path))


def load_prompt_file(path: str | Path, fmt: str = DEFAULT_FORMAT) -> PromptFile:
    """The instruction and exemplars of one format of a prompt file (generate.prompt_format).

    A file may hold other formats of the same exemplars under `formats: {name: {instruction,
    exemplars}}`, e.g. a rationale that repeats each sentence of the question before its
    step: a lever for small teachers.
    """
    path = Path(path)
    formats = read_formats(path)
    if fmt not in formats:
        raise DataError(f"{path}: generate.prompt_format: no format '{fmt}'; allowed: {', '.join(formats)}")
    where = "exemplars" if fmt == DEFAULT_FORMAT else f"formats.{fmt}.exemplars"
    body = formats[fmt]
    return PromptFile(path, str(body.get("instruction", "")).strip(), _exemplars(path, body["exemplars"], where))


def exemplar_questions(path: str | Path) -> list[str]:
    """Every exemplar question of every format (what prepare keeps out of the test split)."""
    out: list[str] = []
    for fmt in format_names(path):
        out += [ex.question for ex in load_prompt_file(path, fmt).exemplars if ex.question not in out]
    return out


def _block(question: str, answer: str | None, rationale: str | None = None) -> str:
    lines = [f"Question: {question}"]
    if answer is not None:
        lines.append(f"Correct answer: {answer}")
    lines.append("Reasoning:" + (f" {rationale}" if rationale is not None else ""))
    return "\n".join(lines)


def draw_exemplars(
    prompt: PromptFile, shots: int, draw: ExemplarDraw, seed: int, question_id: str
) -> tuple[Exemplar, ...]:
    """The exemplars one question is shown (generate.exemplars): the file's first `shots`
    (fixed), or `shots` of all of them drawn for this question (per_question), seeded by
    (seed, question id): the same on every rerun and whatever the questions around it,
    and different from question to question, so that a teacher that copies an exemplar's
    numbers copies other numbers for each question."""
    _check_shots(prompt, shots)
    if draw == "fixed":
        return prompt.exemplars[:shots]
    return tuple(random.Random(f"exemplars:{seed}:{question_id}").sample(prompt.exemplars, shots))


def teacher_prompts(
    prompt: PromptFile,
    records: list[dict],
    shots: int,
    answer_hint: bool,
    draw: ExemplarDraw = "fixed",
    seed: int = 0,
) -> tuple[list[str], str]:
    """Every record's teacher prompt (answer-conditioned with `answer_hint`: a record's
    `answer` is shown before the reasoning), and the text all of them start with (the
    backend reuses its KV cache): the few-shot prefix with fixed exemplars, the
    instruction alone when they are drawn per question."""
    _check_shots(prompt, shots)
    if draw == "fixed":
        shared = _prefix(prompt, prompt.exemplars[:shots], answer_hint)
        prefixes = [shared] * len(records)
    else:
        shared = _prefix(prompt, (), answer_hint)
        prefixes = [
            _prefix(prompt, draw_exemplars(prompt, shots, draw, seed, str(r["id"])), answer_hint) for r in records
        ]
    prompts = [p + _block(r["question"], r["answer"] if answer_hint else None) for p, r in zip(prefixes, records)]
    return prompts, shared


def _check_shots(prompt: PromptFile, shots: int) -> None:
    if shots > len(prompt.exemplars):
        raise DataError(
            f"{prompt.path}: generate.shots is {shots} but the file has only {len(prompt.exemplars)} exemplars"
        )


def _prefix(prompt: PromptFile, exemplars: tuple[Exemplar, ...], answer_hint: bool) -> str:
    parts = [prompt.instruction] if prompt.instruction else []
    for ex in exemplars:
        parts.append(_block(ex.question, ex.answer if answer_hint else None, ex.rationale))
    return "\n\n".join(parts) + "\n\n"
