"""The calculator's logits processor, driven step by step with a locally trained tokenizer
and no model: what it forces after 'expression =', and that the forced number stays closed
whatever the student tries next."""

import random
import re

import pytest
import torch

from cotdistill.text.calculator import calculate
from cotdistill.text.calculator_processor import calculator_processor

from .standins import MISSING, standin, t5_tokenizer


def _texts() -> list[str]:
    rng = random.Random(0)
    texts = []
    for _ in range(400):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        texts.append(
            f"She has {a} * {b} = {a * b} apples, {a}.5 + 1,000 = {a + 1000}.5 and {a},000 items, "
            f"{a}/{b} of it. Monday - 3 * 4 = 12. 25% of 80 = 20, (2^64)^17 - 60% or ٣ + ٤. The answer is"
        )
    return texts


def _metaspace_tokenizer(texts: list[str]):
    """A BPE split on spaces only, like T5's sentencepiece: it has tokens such as '▁42.5' and
    '.5' that a byte-level BPE (which splits digits from punctuation) never makes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    t.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=800, special_tokens=["<pad>", "</s>", "<unk>"], show_progress=False)
    )
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module", params=["byte-level", "metaspace"])
def tok(request):
    from cotdistill.train.students.tokenizer import train_tokenizer

    return train_tokenizer(_texts(), 500) if request.param == "byte-level" else _metaspace_tokenizer(_texts())


def start(tok, text: str) -> list[int]:
    # pad: T5's decoder start; a tokenizer without one (Llama 3) starts with its BOS
    first = tok.pad_token_id if tok.pad_token_id is not None else tok.bos_token_id
    return [first] + tok.encode(text, add_special_tokens=False)


def scores_after(proc, seqs: list[list[int]], prefer: torch.Tensor) -> torch.Tensor:
    return proc(torch.tensor(seqs), prefer.repeat(len(seqs), 1).clone())


def forced_after(proc, tok, text: str) -> tuple[str, list[int]]:
    """(the text the processor forces after `text`, the sequence with it): step until more
    than one token is allowed."""
    seq, forced = start(tok, text), []
    for _ in range(300):
        allowed = torch.isfinite(scores_after(proc, [seq], torch.zeros(len(tok)))[0]).nonzero().flatten().tolist()
        if len(allowed) != 1:
            break
        seq.append(allowed[0])
        forced.append(allowed[0])
    return tok.decode(forced), seq


@pytest.mark.parametrize(
    "text,forced",
    [
        ("She has 6 * 7 =", " 42"),
        ("so 12 + 30 =", " 42"),
        ("Monday - 3 * 4 =", " 12"),  # a prose dash is not a minus (it forced -12)
        ("it is -3 * 4 =", " -12"),
        ("1 / 3 =", " 0.333333"),
        ("25% of 80 =", " 20"),
        ("100% - 60% =", " 40%"),  # percent in, percent out
        ("25% =", ""),  # a bare percent is no computation (it forced 0.25)
        ("The remaining 40% =", ""),
        ("(2^64)^17/3 =", ""),  # a CalcError: nothing forced, decoding goes on (it raised)
        ("٣ + ٤ =", ""),  # not ASCII digits
        ("The answer =", ""),
        ("3 * 4 = 12 =", ""),  # a chain's later link is no computation: the calculator, like
        ("17 + 20 = 37 = 95 =", ""),  # the paper's, forces computations only (forcing links made a
        # weak student loop '= 37 = 37 = ...' past its answer)
    ],
)
def test_forced_values(tok, text, forced):
    assert forced_after(calculator_processor(tok, forcing="ids"), tok, text)[0].strip() == forced.strip()


def test_value_longer_than_any_window_is_forced_in_full(tok):
    """A 98-digit value is forced to its last digit (a 48-token window cut it mid-number)."""
    expr = "123456789^12 / 7"
    value = calculate(expr)
    assert len(tok.encode(" " + value, add_special_tokens=False)) > 48
    assert forced_after(calculator_processor(tok, forcing="ids"), tok, f"That is {expr} =")[0].strip() == value


def _render(tok) -> list[str]:
    """Each token's text as it renders after a digit."""
    head = tok.decode(tok.encode("1", add_special_tokens=False))
    anchor = tok.encode("1", add_special_tokens=False)
    return [t[len(head) :] for t in tok.batch_decode([anchor + [i] for i in range(len(tok))], skip_special_tokens=True)]


def _extends(text: str) -> bool:
    return bool(re.match(r"\d|[.,/]\d", text))


@pytest.mark.parametrize("favourite", [".", ",", "/", None])
def test_forced_number_stays_closed(tok, favourite):
    """A student that wants nothing more than to extend the number: digits first, then a
    separator with digits, then a lone separator (its favourite one first). For as many
    steps as it tries, the text after '=' still reads 42, never 42.5, 42,000 or 425."""
    rendered = _render(tok)
    prefer = torch.tensor(
        [
            3.0
            if t[:1].isdigit()
            else 2.0
            if _extends(t)
            else 1.5
            if t == favourite
            else 1.0
            if t in (".", ",", "/")
            else 0.0
            for t in rendered
        ]
    )
    proc = calculator_processor(tok, forcing="ids")
    _, seq = forced_after(proc, tok, "She has 6 * 7 =")
    wrote = []
    for _ in range(8):
        nxt = int(scores_after(proc, [seq], prefer)[0].argmax())
        seq.append(nxt)
        wrote.append(rendered[nxt])
        after = tok.decode(seq[1:]).split("=")[-1]
        assert re.fullmatch(r" 42(?![\d²³¹]|[.,/]\d).*", after, re.S), (after, wrote)
    assert wrote[0] in (".", ",", "/")  # a lone separator is allowed: "= 42." ends a sentence
    if favourite:
        assert wrote[0] == favourite


def test_closing_bans_exactly_the_extensions(tok):
    """Right after the value every token that would extend it is banned and nothing else; after
    a lone separator every digit is banned; after a space the next number is free."""
    rendered = _render(tok)
    proc = calculator_processor(tok, forcing="ids")
    _, seq = forced_after(proc, tok, "She has 6 * 7 =")
    zeros = torch.zeros(len(tok))

    banned = torch.isinf(scores_after(proc, [seq], zeros)[0]).nonzero().flatten().tolist()
    assert banned == [i for i, t in enumerate(rendered) if t[:1].isdigit() or _extends(t)]
    for sep in (".", ",", "/"):
        after_sep = seq + [rendered.index(sep)]  # the token written against the number, not ' .'
        banned = torch.isinf(scores_after(proc, [after_sep], zeros)[0]).nonzero().flatten().tolist()
        assert banned == [i for i, t in enumerate(rendered) if t[:1].isdigit()], sep
    for more in (" apples", ". Then", ", so"):
        assert torch.isfinite(scores_after(proc, [seq + tok.encode(more, add_special_tokens=False)], zeros)).all()


def test_rows_are_independent(tok):
    """In one batch, a row mid-value is forced and a row without '=' is left alone."""
    proc = calculator_processor(tok, forcing="ids")
    a = start(tok, "She has 6 * 7 =")
    b = start(tok, "She has 6 apples and")
    b = b + [tok.pad_token_id] * (len(a) - len(b)) if len(b) < len(a) else b[: len(a)]
    out = scores_after(proc, [a, b], torch.zeros(len(tok)))
    assert torch.isfinite(out[0]).sum() == 1 and torch.isfinite(out[1]).all()


# --------------------------------------------------------------------------- a T5-style sentencepiece vocabulary


@pytest.fixture(scope="session")
def t5_tok(tmp_path_factory):
    """A T5-style sentencepiece unigram tokenizer (tests/standins.py): '^', ',', '%', '<',
    '{' and '}' are '<unk>', as '<', '{' and '}' are in the real T5 v1.1 vocabulary."""
    return t5_tokenizer(tmp_path_factory.mktemp("t5-spiece"))


def test_t5_standin_has_t5s_conventions(t5_tok):
    from transformers import AutoTokenizer

    tok = t5_tok
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.bos_token_id) == (0, 1, 2, None)
    assert tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>"]) == [len(tok) - 1, len(tok) - 100]
    assert tok("3 + 4").input_ids[-1] == tok.eos_token_id
    assert any(p.lstrip("▁").isdigit() and len(p.lstrip("▁")) > 1 for p in tok.get_vocab())  # digits merged
    for c in MISSING:
        assert tok.unk_token_id in tok.encode(f"a {c} b", add_special_tokens=False), c
    folder = tok.name_or_path
    again = AutoTokenizer.from_pretrained(folder)  # the saved folder, as a Hub download would be
    assert type(again).__name__ == "T5Tokenizer" and again.get_vocab() == tok.get_vocab()


@pytest.mark.parametrize(
    "text,forced",
    [
        # Read across the '<unk>' of a missing '^' or '%', these forced a value of glued pieces
        # (observed before the fix, in the comments); now nothing is forced.
        ("2^64^17/3 =", ""),  # read '26417/3': it forced 8805.666667
        ("123456789^12 / 7 =", ""),  # read '12345678912 / 7': it forced 1763668416
        ("100% - 60% =", ""),  # read '100 - 60': it forced 40
        ("(2^64)^17/3 =", ""),  # read '(264)17/3', no computation: nothing forced before either
        ("7 % 3 + 4 =", ""),  # read '7  3 + 4', no computation: nothing forced before either
        # An unk just before the expression, past spaces only, may have been a digit or an operator.
        ("x % 3 + 4 =", ""),  # it forced 7
        ("x{ 12 * 7 =", ""),  # it forced 84
        # ... or past arithmetic only: '5 - 3 * 4' is -7, the prose dash of 'Monday - 3 * 4' 12.
        ("Monday} - 3 * 4 =", ""),  # it forced 12
        ("{a}, 12 * 7 =", ""),  # it forced 84 (', ' is a prose break, but '5,' is no prose)
        # A sentinel is text the calculator cannot see either.
        ("So 3 * <extra_id_0> 4 =", ""),  # it forced 12
        ("<extra_id_3>12 * 7 =", ""),  # it forced 84
        # Words between the unk and the expression: the value is forced as before.
        ("Then 12 * 7 =", "84"),
        ("{a} so 12 * 7 =", "84"),
        ("{a}. So 12 * 7 = 84 and 3 + 4 =", "7"),
        ("Monday - 3 * 4 =", "12"),
        ("100 - 60 =", "40"),
    ],
)
def test_nothing_forced_across_unseen_text(t5_tok, text, forced):
    """The calculator never joins the text on either side of a token it cannot read
    (issue 23): an expression whose arithmetic reaches back to one forces nothing."""
    assert forced_after(calculator_processor(t5_tok, forcing="ids"), t5_tok, text)[0].strip() == forced


def test_forced_value_is_whole_and_closed_with_t5_standin(t5_tok):
    """With merged digits ('▁12', '345'), the value is forced in full, then kept closed."""
    proc = calculator_processor(t5_tok, forcing="ids")
    expr = "123456789 * 12 / 7"
    assert forced_after(proc, t5_tok, f"That is {expr} =")[0].strip() == calculate(expr)
    _, seq = forced_after(proc, t5_tok, "Then 12 * 7 =")
    banned = torch.isinf(scores_after(proc, [seq], torch.zeros(len(t5_tok)))[0]).nonzero().flatten().tolist()
    assert banned and banned == [i for i, t in enumerate(_render(t5_tok)) if t[:1].isdigit() or _extends(t)]


# --------------------------------------------------------------------------- Llama 3's byte-level BPE


@pytest.fixture(scope="session")
def llama3_tok(tmp_path_factory):
    """The Llama 3-shaped stand-in's tokenizer (tests/standins.py) as a Hub download loads it:
    byte-level BPE, numbers in chunks of 1-3 digits, BOS first, no pad token."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(standin("llama-3.2", tmp_path_factory))


def test_llama3_standin_has_llama3_conventions(llama3_tok):
    tok = llama3_tok
    assert tok.pad_token_id is None and tok.bos_token == "<|begin_of_text|>" and tok.eos_token == "<|end_of_text|>"
    ids = tok("Tom has 1234567 eggs").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] != tok.eos_token_id
    assert tok.convert_ids_to_tokens(tok.encode(" 1234567", add_special_tokens=False)) == ["Ġ", "123", "456", "7"]
    assert tok.bos_token_id >= len(tok) - 8  # the special tokens follow the learned vocabulary


@pytest.mark.parametrize(
    "text,forced",
    [
        ("She has 6 * 7 =", "42"),
        ("That is 1234 * 1000 + 567 =", "1234567"),  # ' ', '123', '456', '7'
        ("1234567 + 1 =", "1234568"),
        ("123456789 * 12 / 7 =", calculate("123456789 * 12 / 7")),
        ("100% - 60% =", "40%"),
        ("Monday - 3 * 4 =", "12"),
        ("(2^64)^17/3 =", ""),
        ("3 * 4 = 12 =", ""),
    ],
)
def test_forced_values_with_llama3_standin(llama3_tok, text, forced):
    """With numbers read in chunks of three digits, a value of several chunks is forced whole."""
    assert forced_after(calculator_processor(llama3_tok, forcing="ids"), llama3_tok, text)[0].strip() == forced


def test_multi_chunk_value_stays_closed_with_llama3_standin(llama3_tok):
    """After a forced 1234567 ('123', '456', '7'), a student that wants nothing more than
    digits (a chunk such as '8' or '890' would join the last one) may not extend it, and
    exactly the extending tokens are banned."""
    tok = llama3_tok
    rendered = _render(tok)
    proc = calculator_processor(tok, forcing="ids")
    value, seq = forced_after(proc, tok, "That is 1234 * 1000 + 567 =")
    assert value == " 1234567"
    extends = [i for i, t in enumerate(rendered) if t[:1].isdigit() or _extends(t)]
    assert torch.isinf(scores_after(proc, [seq], torch.zeros(len(tok)))[0]).nonzero().flatten().tolist() == extends
    prefer = torch.tensor([3.0 if t[:1].isdigit() else 2.0 if _extends(t) else 0.0 for t in rendered])
    for _ in range(6):
        seq.append(int(scores_after(proc, [seq], prefer)[0].argmax()))
        after = tok.decode(seq, skip_special_tokens=True).split("=")[-1]
        assert re.fullmatch(r" 1234567(?![\d²³¹]|[.,/]\d).*", after, re.S), after


# --------------------------------------------------------------------------- decode() on the stand-in models

# What the scripted student writes: text and, after each "=", a value (odd places) that it
# writes wrong, so that the calculator must write the right one.
SCRIPT = ["Then 6 * 7 =", "42", ". So 1234 * 1000 + 567 =", "1234567", ". The answer is 7."]


def _scripted(model, tok, anchor: int) -> str:
    """Make `model` (random weights) write SCRIPT greedily, through its generation config's
    sequence biases: after `anchor` (where its output starts) and each prefix of the script,
    the script's next token gets +100; where a value starts, a wrong digit gets it instead
    (and the script's own token +50, which "text" forcing, choosing by the student's
    scores among the tokens that write the value, picks once the wrong one is banned), so
    the script goes on only if the calculator forced the right value. Returns the text the
    calculator should make."""
    ids, biases = [], []
    wrong = tok.encode(" 9", add_special_tokens=False)
    for n, piece in enumerate(SCRIPT):
        value = n % 2 == 1
        piece_ids = tok.encode((" " if value else "") + piece, add_special_tokens=False)
        # a value's first token that differs from the wrong one's (Llama 3: ' ' is shared)
        differs = next(k for k, t in enumerate(piece_ids) if k >= len(wrong) or wrong[k] != t) if value else None
        for k, t in enumerate(piece_ids):
            if not value or k != differs:
                biases.append([[anchor] + ids + [t], 100.0])
            else:
                biases.append([[anchor] + ids + [wrong[k]], 100.0])
                biases.append([[anchor] + ids + [t], 50.0])
            ids.append(t)
    model.generation_config.sequence_bias = biases
    return tok.decode(ids, skip_special_tokens=True)


def _check_values(text: str) -> int:
    """Every 'expression = number' in `text` carries the calculator's value; how many there are."""
    from cotdistill.text.calculator import trailing_expression

    seen = 0
    for m in re.finditer(r"=\s*(-?\d[\d.]*)", text):
        expr = trailing_expression(text[: m.start() + 1])
        if expr is not None:
            assert calculate(expr) == m.group(1).rstrip("."), (expr, m.group(1), text)
            seen += 1
    return seen


@pytest.mark.parametrize("forcing", ["ids", "text"])
@pytest.mark.parametrize("name", ["t5-v1_1", "llama-3.2"])
def test_decode_with_calculator_on_standin_models(tmp_path_factory, name, forcing):
    """decode() with the calculator on each stand-in, as a Hub download loads it (the Llama
    3 tokenizer with no pad token, the model's generation config asking for sampling): the
    scripted student writes wrong values after each '=', and the output carries the right
    ones; without the calculator it does not."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from cotdistill.evaluate.decoding import DecodeOptions, decode
    from cotdistill.train.students.causal import STOP_STRINGS, prompt_text

    folder = standin(name, tmp_path_factory)
    tok = AutoTokenizer.from_pretrained(folder)
    causal = name.startswith("llama")
    model = (AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM).from_pretrained(folder)
    questions = ["Tom has 6 eggs. How many?", "A farmer has 1234 boxes of 1000 and 567 more. How many apples now?"]
    prompts = [prompt_text(q) for q in questions] if causal else questions
    anchor = tok.encode(prompts[0], add_special_tokens=False)[-1] if causal else model.config.decoder_start_token_id
    expected = _scripted(model, tok, anchor)
    opts = DecodeOptions(max_new_tokens=len(tok.encode(expected, add_special_tokens=False)) + 6)
    stop = STOP_STRINGS if causal else ()
    with_calc = decode(
        model, tok, prompts, 2, opts, calculator=True, progress=False, stop_strings=stop, forcing=forcing
    )
    for out in with_calc:
        assert out.startswith(expected.strip()), out
        assert _check_values(out) >= 2
    without = decode(model, tok, prompts, 2, opts, calculator=False, progress=False, stop_strings=stop)
    assert all("6 * 7 = 42" not in out for out in without), without


# --------------------------------------------------------------------------- forcing the value by text (issue 23)


def _merged_tokenizer():
    """A tiny unigram vocabulary split on spaces, like T5's sentencepiece: ' 408' alone is
    '▁408', but in running text '= 408.' is '=', '▁', '408.' (the number glued to its period)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("▁", -1.0),
        ("408.", -1.0),
        ("▁408", -1.5),
        (".", -1.0),
        ("=", -1.0),
        ("*", -1.0),
    ] + [(d, -3.0) for d in "0123456789"]
    t = Tokenizer(models.Unigram(pieces, unk_id=2))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def test_text_forcing_lets_the_merged_piece_through():
    """'17 * 24 =': "ids" forces '▁408' (' 408' encoded alone); "text" allows any tokens that
    write ' 408', so a student that learned '▁', '408.' from '= 408.' writes it so. Either
    way the number is then closed: a student that wants nothing but digits never extends it."""
    tok = _merged_tokenizer()
    ids = tok.convert_tokens_to_ids
    assert tok.convert_ids_to_tokens(tok.encode("17 * 24 = 408.", add_special_tokens=False))[-3:] == ["=", "▁", "408."]
    assert tok.convert_ids_to_tokens(tok.encode(" 408", add_special_tokens=False)) == ["▁408"]
    digits = [ids(d) for d in "0123456789"]

    def allowed(proc, seq, prefer):
        out = scores_after(proc, [seq], prefer)[0]
        return out, sorted(tok.convert_ids_to_tokens(torch.isfinite(out).nonzero().flatten().tolist()))

    # the trained student: '▁', then '408.', as in training; digits above all once the number is written
    prefer = torch.zeros(len(tok))
    prefer[ids("▁")], prefer[ids("408.")] = 2.0, 2.0
    prefer[digits] = 1.0
    with pytest.raises(ValueError):
        calculator_processor(tok, forcing="bytes")
    for forcing, steps in [("ids", [["▁408"]]), ("text", [["▁", "▁408"], ["4", "408."]])]:
        proc = calculator_processor(tok, forcing=forcing)
        seq = start(tok, "17 * 24 =")
        for expect in steps:
            out, ok = allowed(proc, seq, prefer)
            assert ok == sorted(expect), forcing
            if forcing == "text":  # the student's own scores among the allowed tokens
                assert torch.equal(out[torch.isfinite(out)], prefer[torch.isfinite(out)])
            seq.append(int(out.argmax()))
        written = tok.decode(seq, skip_special_tokens=True).split("=")[-1]
        assert written == (" 408" if forcing == "ids" else " 408."), forcing
        for step in range(4):
            out, _ = allowed(proc, seq, prefer)
            if step == 0:
                assert torch.isinf(out[digits]).all(), forcing
            seq.append(int(out.argmax()))
            after = tok.decode(seq, skip_special_tokens=True).split("=")[-1]
            assert re.fullmatch(r" 408(?!\d|[.,/]\d).*", after, re.S), (forcing, after)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_text_forcing_writes_the_same_value(tok, seed):
    """Whichever allowed tokens a student prefers (random scores), "text" forcing writes the
    value that "ids" forcing writes, and nothing when "ids" forces nothing."""
    gen = torch.Generator().manual_seed(seed)
    for text in ("She has 6 * 7 =", "1 / 3 =", "it is -3 * 4 =", "100% - 60% =", "(2^64)^17/3 =", "The answer ="):
        proc, seq = calculator_processor(tok, forcing="text"), start(tok, text)
        for _ in range(40):
            out = scores_after(proc, [seq], torch.randn(len(tok), generator=gen))[0]
            if torch.isfinite(out).sum() > len(tok) // 2:  # the value is written (or none was forced)
                break
            seq.append(int(out.argmax()))
        before = tok.decode(start(tok, text), skip_special_tokens=True)
        written = tok.decode(seq, skip_special_tokens=True)[len(before) :].lstrip()
        value = forced_after(calculator_processor(tok, forcing="ids"), tok, text)[0].strip()
        assert written.startswith(value) and not _extends(written[len(value) :]), (text, written, value)
        assert len(written) <= len(value) + 1, (text, written)  # a separator at most ('42.')
