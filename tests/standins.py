"""Small local stand-ins for the Hub's files, built in seconds and with no network.

`t5_tokenizer` trains a sentencepiece unigram vocabulary with T5's conventions and saves
it as a T5 tokenizer folder in the Hub's own format (spiece.model, tokenizer.json,
tokenizer_config.json, ...): pad 0, eos 1, unk 2, no bos, 100 sentinels '<extra_id_N>'
appended after the pieces, digits merged into numbers ('▁1234'), and, like the real T5
vocabulary that maps '<', '{' and '}' to '<unk>', some ASCII characters missing.

`t5_model` and `llama3_model` save whole checkpoints beside their tokenizers, as the Hub
holds google/t5-v1_1-* and meta-llama/Llama-3.2-1B: the real families' architecture
details at tiny dims, random weights. `standin(name, tmp_path_factory)` builds each once
per test session, for train.model_path and the decoding tests.
"""

from __future__ import annotations

import json
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
        out.append(
            f"Question: {name} has {a} {thing} and buys {b} more in each of {c} days. "
            f"How many {thing} does {name} have now?"
        )
        out.append(
            f"Answer: Each day adds {b} {thing} so {b} * {c} = {b * c}. Then {a} + {b * c} = "
            f"{a + b * c}. Half of it is ({a} + {b * c}) / 2 = {(a + b * c) / 2}. "
            f"The answer is {a + b * c}."
        )
        out.append(
            f"{name} gave away {c} {thing}: {a} - {c} = {a - c} and {a} / {c} = {a // c} "
            f"with {a % c} left. Then 12 * 7 = 84 and 6 * 7 = 42."
        )
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
        sentence_iterator=iter(_corpus()),
        model_prefix=str(folder / "spiece"),
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        split_digits=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )
    tok = T5Tokenizer.from_pretrained(str(folder), extra_ids=100)
    tok.save_pretrained(str(folder))
    return tok


# ----------------------------------------------------------------------------- models


def t5_model(folder: Path, seed: int = 0) -> Path:
    """A T5 v1.1-shaped student in `folder`, as `save_pretrained` writes google/t5-v1_1-*:
    the tokenizer above, random weights, and v1.1's architecture at tiny dims (gated-GELU
    feed-forward, untied input and output embeddings, relative attention, the decoder
    started with pad 0). Like the real checkpoints (32128 rows for 32100 tokens), the
    embedding has more rows than the tokenizer has tokens."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    tok = t5_tokenizer(folder)
    config = T5Config(
        vocab_size=-(-len(tok) // 128) * 128,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(folder)
    # transformers 5 ties T5's lm_head to the input embedding whatever the config says and
    # saves one of them; v1.1 checkpoints carry both and a config that says so.
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"] = torch.randn(config.vocab_size, config.d_model) * config.d_model**-0.5
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    saved = json.loads((folder / "config.json").read_text())
    saved.pop("scale_decoder_outputs", None)
    (folder / "config.json").write_text(json.dumps({**saved, "tie_word_embeddings": False}, indent=2))
    return folder


# Llama 3's pre-tokenizer split (tiktoken's cl100k pattern as transformers converts it):
# contractions, words with one leading non-letter, numbers in chunks of 1-3 digits,
# punctuation runs, newlines, spaces.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS3, EOS3 = "<|begin_of_text|>", "<|end_of_text|>"
# Llama 3's special tokens after the BPE vocabulary (128000-128255), a few of them.
LLAMA3_SPECIAL = [
    BOS3,
    EOS3,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|reserved_special_token_2|>",
    "<|eot_id|>",
]


def _coin_texts() -> list[str]:
    """Text in the style of the offline dataset (coin_flip), so that its words are merged."""
    names = ["Ka", "Sherrie", "Tom", "Ann", "Maria", "Lee"]
    out = []
    for i, name in enumerate(names * 20):
        flips = " ".join(
            f"{n} {'flips' if (i + j) % 2 else 'does not flip'} the coin." for j, n in enumerate(names[:3])
        )
        out.append(
            f"A coin is heads up. {name} flips the coin. {flips} Is the coin still heads up?\n"
            f"Answer: The coin was flipped {i % 4} times. The answer is {'yes' if i % 2 else 'no'}."
        )
    return out


def llama3_tokenizer(folder: Path, vocab_size: int = 800):
    """A Llama 3-shaped tokenizer saved into `folder`: a byte-level BPE trained here with
    Llama 3's split pattern (so '1234567' is '123', '456', '7' and ' 42' is ' ', '42'),
    '<|begin_of_text|>' put before every text by a TemplateProcessing post-processor and
    '<|end_of_text|>' as EOS, both after the learned vocabulary, and no pad token. Wrapped
    in PreTrainedTokenizerFast, the class the real tokenizer_config.json names."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = Tokenizer(models.BPE(ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(
        _corpus() + _coin_texts(),
        trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        ),
    )
    t.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in LLAMA3_SPECIAL])
    bos = t.token_to_id(BOS3)
    t.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS3}:0 $A:0", pair=f"{BOS3}:0 $A:0 {BOS3}:1 $B:1", special_tokens=[(BOS3, bos)]
            ),
        ]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=t, bos_token=BOS3, eos_token=EOS3, model_max_length=131072, clean_up_tokenization_spaces=True
    )
    tok.save_pretrained(str(folder))
    config = json.loads((folder / "tokenizer_config.json").read_text())  # transformers 5 writes its new name
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"}))
    return tok


def llama3_model(folder: Path, seed: int = 0) -> Path:
    """A Llama 3.2-shaped causal student in `folder`, as `save_pretrained` writes
    meta-llama/Llama-3.2-1B: the tokenizer above, random weights, grouped-query attention
    (4 heads sharing 2 key/value heads), tied input and output embeddings, llama3 RoPE
    scaling, no pad token id, and the real generation_config's sampling defaults (greedy
    decoding must override them)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tok = llama3_tokenizer(folder)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_theta": 500000.0,
        },
        rope_theta=500000.0,
        tie_word_embeddings=True,
        hidden_act="silu",
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, do_sample=True, temperature=0.6, top_p=0.9
    )
    model.save_pretrained(folder)
    return folder


_BUILT: dict[str, Path] = {}
_BUILDERS = {"t5-v1_1": t5_model, "llama-3.2": llama3_model}


def standin(name: str, tmp_path_factory) -> Path:
    """The folder of stand-in `name` (t5-v1_1 | llama-3.2), built once per test session
    (under pytest's temporary folder) whichever test module asks first."""
    if name not in _BUILT:
        _BUILT[name] = _BUILDERS[name](tmp_path_factory.mktemp(name))
    return _BUILT[name]
