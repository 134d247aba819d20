"""The `hf` backend: shared-prefix KV reuse and the decoding loop change nothing but speed;
sampling per row."""

import pytest

from cotdistill.core.catalog.teachers import TeacherPreset
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, prompt_path, teacher_prompts
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.backends import make_backend
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all

from .conftest import qa_records, section

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("A coin is heads up. Bo flips the coin. Ann flips the coin. Is the coin still heads up?", "yes"),
    ("A coin is heads up. Cy does not flip the coin. Is the coin still heads up?", "yes"),
    (
        "A coin is heads up. Dee flips the coin. Eve does not flip the coin. Fay flips the coin. "
        "Is the coin still heads up?",
        "yes",
    ),
]


@pytest.fixture(scope="module")
def backends(request, smollm2_folder):
    import torch

    # Two threads on two cores that other jobs share run tiny matmuls ~8x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))

    folder = smollm2_folder
    preset = TeacherPreset(name="local", backend="hf", model=str(folder), params_b=0.135)
    pf = load_prompt_file(prompt_path("coin_flip"))
    prompts, prefix = teacher_prompts(pf, qa_records(QUESTIONS), 2, True)
    reuse = make_backend(preset, section("generate", prefix_cache=True), shared_prefix=prefix)
    plain = make_backend(preset, section("generate", prefix_cache=False), shared_prefix=prefix)
    return reuse, plain, prompts


def test_prefix_reuse_gives_the_same_greedy_outputs(backends):
    reuse, plain, prompts = backends
    sampling = Sampling(20, stop=STOP_STRINGS)
    with_reuse = reuse.complete(prompts, sampling)
    assert reuse.prefix_hits == 1 and len(reuse._prefix_ids) > 100  # the exemplars, computed once
    assert reuse.complete(prompts[1:], sampling) == with_reuse[1:]  # a second batch, same prefix KV
    assert reuse.prefix_hits == 2
    without = plain.complete(prompts, sampling)
    assert plain.prefix_hits == 0
    assert [c.text for c in with_reuse] == [c.text for c in without]
    assert with_reuse == without  # token counts and finish reasons too
    assert all(c.text and "Question:" not in c.text for c in with_reuse)


def test_samples_differ_per_index_and_do_not_depend_on_the_batch(backends, tmp_path):
    reuse, plain, prompts = backends
    sampling = Sampling(10, temperature=1.0, stop=STOP_STRINGS, seed=3)
    batch = reuse.complete(prompts, sampling)
    assert reuse.complete(prompts[2:], sampling) == batch[2:]  # alone or in a batch: the same draw
    assert plain.complete(prompts[:1], sampling) == batch[:1]  # with or without the prefix cache
    cache = RequestCache(tmp_path / "c.sqlite")
    results, stats = generate_all(reuse, prompts, sampling, cache, batch_size=4, num_samples=3, progress=False)
    assert stats.sent == 9 and [r[0] for r in results] == batch  # sample 0 keeps the run's seed
    assert stats.costs()["prefix_cache_batches"] >= 3  # one batch per sample index at least
    for samples in results:
        assert len({c.text for c in samples}) >= 2  # sample indices draw with different seeds
    again, stats2 = generate_all(reuse, prompts[:2], sampling, RequestCache(tmp_path / "c2.sqlite"), 2, 3, False)
    assert again == results[:2] and stats2.sent == 6  # recomputed in other batches: the same samples


def test_decoding_loop_gives_the_outputs_of_generate(backends):
    """Rows leave the loop's batch as they finish; the completions are generate's, token for token."""
    reuse, plain, prompts = backends
    for backend in (reuse, plain):
        for sampling in (Sampling(64, stop=STOP_STRINGS), Sampling(16, temperature=1.0, stop=STOP_STRINGS, seed=5)):
            backend.decode = "generate"
            reference = backend.complete(prompts, sampling)
            backend.decode = "loop"
            assert backend.complete(prompts, sampling) == reference
            if sampling.temperature == 0:  # rows stopped at different steps: some left the batch early
                assert "stop" in {c.finish_reason for c in reference}
                assert len({c.completion_tokens for c in reference}) > 1
    from cotdistill.generate.teachers.hf_local import HFBackend

    with pytest.raises(ValueError, match="decode must be"):
        HFBackend(TeacherPreset(name="x", backend="hf", model="unused", params_b=0), section("generate"), decode="beam")


@pytest.mark.parametrize("quantization, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_bitsandbytes_loading(backends, smollm2_folder, quantization, layer):
    """generate.quantization overrides the preset; the identity (cache key) records it."""

    folder = smollm2_folder
    preset = TeacherPreset(name="local", backend="hf", model=str(folder), params_b=0.135)
    _, _, prompts = backends
    backend = make_backend(preset, section("generate", quantization=quantization), shared_prefix=None)
    assert type(backend.model.model.layers[0].mlp.down_proj).__name__ == layer
    assert backend.identity["quantization"] == quantization
    out = backend.complete(prompts[1:2], Sampling(6, stop=STOP_STRINGS))
    assert out[0].text and out[0].completion_tokens > 0


def test_the_teachers_calculator_makes_every_equation_it_writes_true(smollm2_folder):
    """generate.calculator: the hf teacher's CoTs on multistep_arith with the calculator in
    its decoding (the loop and `generate` alike) state the true value after every 'a op b ='
    the CoT writes; the exemplars' '=' in the prompt force nothing. The setting is part of
    the teacher's identity (its cache key)."""
    import torch

    from cotdistill.text.calculator import find_equations

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        preset = TeacherPreset(name="local", backend="hf", model=str(smollm2_folder), params_b=0.135)
        pf = load_prompt_file(prompt_path("multistep_arith"))
        questions = [
            ("Ned has 10 apples. He buys 7 more. He sells 4. How many apples does Ned have now?", "13"),
            ("Ann has 6 pens. She gets 3 times as many. She gives 5 away. How many pens does Ann have now?", "13"),
        ]
        prompts, prefix = teacher_prompts(pf, qa_records(questions), 2, True)
        calc = make_backend(preset, section("generate", calculator=True), shared_prefix=prefix)
        plain = make_backend(preset, section("generate"), shared_prefix=prefix)
        assert calc.identity["calculator"] == "text" and "calculator" not in plain.identity
        sampling = Sampling(48, stop=STOP_STRINGS)
        out = calc.complete(prompts, sampling)
        equations = [e for c in out for e in find_equations(c.text)]
        assert equations and all(e.holds for e in equations), [c.text for c in out]
        calc.decode = "generate"
        assert calc.complete(prompts, sampling) == out
        print("plain:", [c.text for c in plain.complete(prompts, sampling)], "calculator:", [c.text for c in out])
    finally:
        torch.set_num_threads(threads)
