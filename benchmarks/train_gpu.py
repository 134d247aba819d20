"""GPU training benchmark for both student families, built from config (random weights,
nothing downloaded): a T5 v1.1 base-shaped encoder-decoder and a Qwen2.5-0.5B-shaped
decoder-only model.

    python benchmarks/train_gpu.py [--models t5-base,qwen2.5-0.5b] [--steps 100] [--json out.json]
    python benchmarks/train_gpu.py --cpu-smoke   # the same code paths, tiny shapes, on CPU

For each model, side by side in one run, on random tokens of the same shape:
1. full finetuning in bf16 (autocast, fp32 master weights, fused AdamW);
2. LoRA r=16 on frozen bf16 base weights (peft, the project's apply_lora and targets);
3. LoRA r=16 on 8-bit and on 4-bit (NF4) base weights with paged 8-bit AdamW and
   gradient checkpointing, as the presets that quantize train (catalog/students.py), when
   bitsandbytes is installed (otherwise a line says they were skipped). --no-quant-checkpointing
   drops the checkpointing (Qwen2.5-0.5B's 8-bit arm then needs more than 80 GB at this batch).
Each arm prints tokens/s, model FLOP/s, MFU against the bf16 matmul rate of this GPU
measured in the same run (8192^3 torch.matmul), and peak GPU memory.

FLOP counts: 6 x (dense weights) per token for full finetuning, 4 x for LoRA (no weight
gradients for the frozen base), plus attention scores and values, not halved for the
causal mask (the PaLM convention). The T5 batch is 32 x (256 source + 256 target); the
causal batch is 32 x 512 (256 prompt tokens masked out of the loss + 256 completion).
Without CUDA it exits with code 2 and a one-line reason, unless --cpu-smoke is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

T5_BASE = dict(
    d_model=768,
    d_kv=64,
    d_ff=2048,
    num_layers=12,
    num_decoder_layers=12,
    num_heads=12,
    feed_forward_proj="gated-gelu",
    vocab_size=32128,
    tie_word_embeddings=False,
    dropout_rate=0.0,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)
T5_SMOKE = dict(
    T5_BASE, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4, vocab_size=512
)
# Qwen/Qwen2.5-0.5B's config.json shapes (494M parameters, tied embeddings).
QWEN_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    attention_dropout=0.0,
    bos_token_id=151643,
    eos_token_id=151643,
    pad_token_id=None,
)
QWEN_SMOKE = dict(
    QWEN_05B,
    vocab_size=512,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    bos_token_id=1,
    eos_token_id=2,
)
MODELS = ("t5-base", "qwen2.5-0.5b")


def matmul_rate(device, dtype, n: int, iters: int) -> float:
    """Measured dense matmul FLOP/s for `dtype` on `device` (the MFU denominator)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def t5_flops_per_step(config, batch: int, s: int, t: int, weight_grads: bool) -> float:
    """Encoder over S tokens, decoder over T (self T^2 and cross T*S attention)."""
    d, layers, ff = config.d_model, config.num_layers, config.d_ff
    inner = config.num_heads * config.d_kv
    attn = 4 * d * inner
    mlp = 3 * d * ff  # gated-GELU: two input projections and one output
    enc, dec = layers * (attn + mlp), layers * (2 * attn + mlp)
    head = d * config.vocab_size
    dense = (6 if weight_grads else 4) * batch * (s * enc + t * (dec + head))
    scores = 12 * batch * layers * inner * (s * s + t * t + t * s)
    return dense + scores


def causal_flops_per_step(config, batch: int, s: int, t: int, weight_grads: bool) -> float:
    """One decoder over S + T tokens (grouped-query attention: K and V are narrower)."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    head_dim = d // config.num_attention_heads
    q = config.num_attention_heads * head_dim
    kv = config.num_key_value_heads * head_dim
    per_layer = 2 * d * q + 2 * d * kv + 3 * d * ff  # q, o; k, v; SwiGLU gate, up, down
    n = s + t
    dense = (6 if weight_grads else 4) * batch * n * (layers * per_layer + d * config.vocab_size)
    scores = 12 * batch * layers * q * n * n
    return dense + scores


def build(name: str, smoke: bool):
    """(config, model, flops function, LoRA task type, Auto class for reloading)."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(0)
    if name == "t5-base":
        config = T5Config(**(T5_SMOKE if smoke else T5_BASE))
        return config, T5ForConditionalGeneration(config), t5_flops_per_step, "SEQ_2_SEQ_LM", AutoModelForSeq2SeqLM
    config = Qwen2Config(**(QWEN_SMOKE if smoke else QWEN_05B))
    return config, Qwen2ForCausalLM(config), causal_flops_per_step, "CAUSAL_LM", AutoModelForCausalLM


def make_batch(causal: bool, vocab: int, batch: int, s: int, t: int, device) -> dict:
    """Random tokens; a causal batch masks its S prompt tokens out of the loss, as training does."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0)
    if causal:
        ids = torch.randint(3, vocab, (batch, s + t), generator=gen)
        labels = ids.clone()
        labels[:, :s] = -100
        return {"input_ids": ids.to(device), "labels": labels.to(device)}
    return {
        "input_ids": torch.randint(3, vocab, (batch, s), generator=gen).to(device),
        "labels": torch.randint(3, vocab, (batch, t), generator=gen).to(device),
    }


def train_arm(label, model, device, batch, steps, lr, bf16, paged_8bit):
    """Train `steps` steps on one fixed batch; returns (seconds per step, peak memory GB)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if paged_8bit:
        import bitsandbytes as bnb

        opt = bnb.optim.PagedAdamW8bit(params, lr=lr)
    else:
        opt = torch.optim.AdamW(params, lr=lr, fused=device.type == "cuda")
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warmup = min(5, max(1, steps // 10))
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    per_step = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else float("nan")
    print(f"  {label}: {per_step * 1000:.1f} ms/step, loss {float(loss.detach()):.3f}", flush=True)
    return per_step, peak


def free(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_model(name, args, device, bf16, peak_rate) -> list[dict]:
    import torch

    from cotdistill.train.students.t5 import LORA_TARGETS
    from cotdistill.train.students.weights import apply_lora

    config, model, flops_fn, task_type, auto_cls = build(name, args.cpu_smoke)
    causal = task_type == "CAUSAL_LM"
    targets = None if causal else LORA_TARGETS  # what the project's causal and T5 students use
    n_params = sum(p.numel() for p in model.parameters())
    tokens = args.batch_size * (args.source + args.target)
    print(
        f"\n== {name} from config: {n_params / 1e6:.1f}M params, attention {model.config._attn_implementation}; "
        f"batch {args.batch_size} x {args.source}+{args.target} tokens ({tokens} per step)",
        flush=True,
    )
    batch = make_batch(causal, config.vocab_size, args.batch_size, args.source, args.target, device)
    rows = []

    def record(label, steps, per_step, peak, weight_grads):
        flops = flops_fn(config, args.batch_size, args.source, args.target, weight_grads)
        row = dict(
            model=name,
            arm=label,
            steps=steps,
            ms_per_step=per_step * 1000,
            tokens_per_s=tokens / per_step,
            model_tflops=flops / per_step / 1e12,
            mfu_pct=100 * flops / per_step / peak_rate,
            peak_gb=peak,
        )
        print(
            f"  -> {row['tokens_per_s']:,.0f} tokens/s, {row['model_tflops']:.3g} TFLOP/s model, "
            f"MFU {row['mfu_pct']:.1f}% (recomputation not counted), peak memory {peak:.2f} GB",
            flush=True,
        )
        rows.append(row)

    with tempfile.TemporaryDirectory() as base:
        model.save_pretrained(base)  # the quantized arms load these same weights
        model.to(device)
        full = "full bf16" if bf16 else "full fp32"
        per_step, peak = train_arm(full, model, device, batch, args.steps, 1e-4, bf16, False)
        record(full, args.steps, per_step, peak, True)
        model.to(torch.bfloat16 if bf16 else torch.float32)  # frozen base weights for LoRA
        lora = apply_lora(model, 16, 32, 0.0, False, targets=targets, task_type=task_type)
        label = "LoRA r=16, bf16 base" if bf16 else "LoRA r=16"
        per_step, peak = train_arm(label, lora, device, batch, args.steps, 3e-4, bf16, False)
        record(label, args.steps, per_step, peak, False)
        del model, lora
        free(device)
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            print("  8-bit and 4-bit + LoRA: skipped (bitsandbytes is not installed)", flush=True)
            return rows
        if device.type != "cuda":
            print("  8-bit and 4-bit + LoRA: skipped (bitsandbytes quantization needs CUDA)", flush=True)
            return rows
        from cotdistill.core.quantization import quantization_config

        for quant in ("8bit", "4bit"):
            qmodel = auto_cls.from_pretrained(
                base, dtype=torch.bfloat16, device_map="auto", quantization_config=quantization_config(quant)
            )
            lora = apply_lora(qmodel, 16, 32, 0.0, args.quant_checkpointing, targets=targets, task_type=task_type)
            label = f"{quant} + LoRA r=16" + (", ckpt" if args.quant_checkpointing else "")
            per_step, peak = train_arm(label, lora, device, batch, args.quant_steps, 3e-4, bf16, True)
            record(label, args.quant_steps, per_step, peak, False)
            del qmodel, lora
            free(device)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--steps", type=int, default=100, help="timed steps of the full and bf16 LoRA arms")
    ap.add_argument("--quant-steps", type=int, default=50, help="timed steps of each 8-bit / 4-bit arm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--source", type=int, default=256, help="T5 source tokens / causal prompt tokens")
    ap.add_argument("--target", type=int, default=256, help="T5 target tokens / causal completion tokens")
    ap.add_argument(
        "--quant-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gradient checkpointing in the 8-bit / 4-bit arms (default: on, as the presets)",
    )
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny models, few steps, fp32, on CPU")
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(
            "train_gpu.py: no CUDA device here; run it on a GPU (or with --cpu-smoke to check the code path)",
            file=sys.stderr,
        )
        return 2
    if args.cpu_smoke:
        args.steps, args.quant_steps, args.batch_size, args.source, args.target = 3, 2, 4, 32, 16
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    import transformers

    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(
        f"device: {gpu}; torch {torch.__version__}; transformers {transformers.__version__}; "
        f"{'bf16 autocast' if bf16 else 'fp32'}",
        flush=True,
    )
    peak_rate = matmul_rate(device, dtype, 8192 if device.type == "cuda" else 512, 50 if device.type == "cuda" else 5)
    print(f"measured {dtype} matmul rate: {peak_rate / 1e12:.3g} TFLOP/s", flush=True)
    rows = []
    for name in names:
        rows += bench_model(name, args, device, bf16, peak_rate)
    print(
        f"\n{'model':<14}{'arm':<28}{'ms/step':>9}{'tokens/s':>11}{'MFU %':>7}{'peak GB':>9}"
        f"{'speed vs full':>15}{'memory vs full':>16}"
    )
    for name in names:
        mine = [r for r in rows if r["model"] == name]
        for r in mine:
            mem = r["peak_gb"] / mine[0]["peak_gb"] if mine[0]["peak_gb"] == mine[0]["peak_gb"] else float("nan")
            print(
                f"{name:<14}{r['arm']:<28}{r['ms_per_step']:>9.1f}{r['tokens_per_s']:>11,.0f}{r['mfu_pct']:>7.1f}"
                f"{r['peak_gb']:>9.2f}{mine[0]['ms_per_step'] / r['ms_per_step']:>14.2f}x{mem:>15.2f}x"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": gpu,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "matmul_tflops": peak_rate / 1e12,
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
