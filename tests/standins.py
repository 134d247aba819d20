"""Small local stand-ins for the Hub's files, built in seconds and with no network.

`t5_tokenizer` trains a sentencepiece unigram vocabulary with T5's conventions and saves
it as a T5 tokenizer folder in the Hub's own format (spiece.model, tokenizer.json,
tokenizer_config.json, ...): pad 0, eos 1, unk 2, no bos, 100 sentinels '<extra_id_N>'
appended after the pieces, digits merged into numbers ('▁1234'), and, like the real T5
vocabulary that maps '<', '{' and '}' to '<unk>', some ASCII characters missing.
"""

from __future__ import annotations

import random
from pathlib import Path

# Never in the training text, so never in the vocabulary: each encodes as '<unk>'.
MISSING = "^,%<{}"

_NAMES = ["Tom", "Ann", "She", "He", "Maria", "The baker", "A farmer", "Lee"]
_THINGS = ["apples", "eggs", "books", "coins", "pencils", "cookies", "boxes", "marbles", "dollars"]


def _corpus(lines: int = 600, seed: int = 0) -> list[str]:
    """Arithmetic word problems and rationales, in the style of the datasets ('3 * 4 = 12'),
    free of every character in MISSING."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        a, b, c = rng.randint(1, 999), rng.randint(1, 99), rng.randint(1, 9)
        out.append(f"Question: {name} has {a} {thing} and buys {b} more in each of {c} days. "
                   f"How many {thing} does {name} have now?")
        out.append(f"Answer: Each day adds {b} {thing} so {b} * {c} = {b * c}. Then {a} + {b * c} = "
                   f"{a + b * c}. Half of it is ({a} + {b * c}) / 2 = {(a + b * c) / 2}. "
                   f"The answer is {a + b * c}.")
        out.append(f"{name} gave away {c} {thing}: {a} - {c} = {a - c} and {a} / {c} = {a // c} "
                   f"with {a % c} left. Then 12 * 7 = 84 and 6 * 7 = 42.")
    text = "\n".join(out)
    assert not set(MISSING) & set(text)
    return out


def t5_tokenizer(folder: Path, vocab_size: int = 600):
    """Train the vocabulary into `folder`/spiece.model, load it as transformers' T5 tokenizer
    (100 extra ids) and `save_pretrained` it into `folder`; the tokenizer is returned."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()), model_prefix=str(folder / "spiece"), model_type="unigram",
        vocab_size=vocab_size, character_coverage=1.0, split_digits=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        num_threads=1, minloglevel=2,
    )
    tok = T5Tokenizer.from_pretrained(str(folder), extra_ids=100)
    tok.save_pretrained(str(folder))
    return tok
