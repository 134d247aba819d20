"""Student presets: a short name -> where the weights come from and per-size defaults.

Pure data (no torch import), so that params validation and `cotdistill presets` are fast.
Sizes are the published parameter counts of the T5 v1.1 and Flan-T5 checkpoints; the
defaults are what fits a single 80 GB GPU for training (batch per device x accumulation
= 64 examples per optimizer step for the Hub sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..registry import Registry


@dataclass(frozen=True)
class StudentPreset:
    name: str
    params_m: float  # parameters, millions
    hub_id: Optional[str] = None  # None: built from `config` with a locally trained tokenizer
    config: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 3e-4
    precision: str = "bf16"  # fp32 | bf16 | fp16; bf16 falls back to fp32 without hardware support
    gradient_checkpointing: bool = False
    optimizer: str = "adafactor"
    tokenizer_vocab_size: int = 0  # only for from-config presets

    @property
    def offline(self) -> bool:
        return self.hub_id is None

    def training_memory_gb(self) -> float:
        """Rough peak memory for full finetuning under these defaults, in GB.

        Weights + gradients in the training precision's bytes, plus optimizer state
        (AdamW: 8 bytes per parameter; Adafactor's factored state: about 1 byte), plus a
        20% allowance for activations at the preset batch size.
        """
        n = self.params_m * 1e6
        wb = 2 if self.precision in ("bf16", "fp16") else 4
        master = 4 if wb == 2 else 0  # mixed precision keeps fp32 master weights
        opt = {"adafactor": 1, "adamw_torch": 8, "adamw_bnb_8bit": 2, "paged_adamw_8bit": 2}.get(
            self.optimizer, 8
        )
        return round(n * (wb * 2 + master + opt) * 1.2 / 1e9, 2)


STUDENTS: Registry[StudentPreset] = Registry("student preset")

# The offline student: T5 v1.1 architecture (gated-GELU) at about 10M parameters, with a
# byte-level BPE trained on the training text, so nothing is downloaded.
STUDENTS.register(
    "t5-tiny",
    StudentPreset(
        name="t5-tiny",
        params_m=9.6,
        config=dict(
            d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
            num_heads=4, feed_forward_proj="gated-gelu", dropout_rate=0.0,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=1e-3,
        precision="fp32",
        optimizer="adamw_torch",
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
            d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2,
            num_heads=4, feed_forward_proj="gated-gelu", dropout_rate=0.0,
            tie_word_embeddings=False,
        ),
        batch_size=32,
        learning_rate=2e-3,
        precision="fp32",
        optimizer="adamw_torch",
        tokenizer_vocab_size=600,
    ),
)

_HUB_SIZES = {  # size -> (T5 v1.1 params M, Flan-T5 params M)
    "small": (77, 77),
    "base": (248, 248),
    "large": (783, 783),
    "xl": (2850, 2850),
    "xxl": (11100, 11300),
}
_SIZE_DEFAULTS = {
    "small": dict(batch_size=64, grad_accum=1, learning_rate=1e-3),
    "base": dict(batch_size=64, grad_accum=1, learning_rate=5e-4),
    "large": dict(batch_size=32, grad_accum=2, learning_rate=3e-4, gradient_checkpointing=True),
    "xl": dict(batch_size=16, grad_accum=4, learning_rate=1e-4, gradient_checkpointing=True),
    "xxl": dict(batch_size=8, grad_accum=8, learning_rate=1e-4, gradient_checkpointing=True),
}
for _size, (_t5, _flan) in _HUB_SIZES.items():
    STUDENTS.register(
        f"t5-{_size}",
        StudentPreset(name=f"t5-{_size}", params_m=_t5, hub_id=f"google/t5-v1_1-{_size}", **_SIZE_DEFAULTS[_size]),
    )
    STUDENTS.register(
        f"flan-t5-{_size}",
        StudentPreset(name=f"flan-t5-{_size}", params_m=_flan, hub_id=f"google/flan-t5-{_size}", **_SIZE_DEFAULTS[_size]),
    )
