"""GPU training benchmark: a config-built T5 v1.1 base (random weights, nothing downloaded).

    python benchmarks/train_gpu.py [--steps 200] [--batch-size 32] [--source 256 --target 256]
    python benchmarks/train_gpu.py --cpu-smoke   # the same code path, tiny, on CPU

1. Full finetuning in bf16 (autocast, fp32 master weights, fused AdamW) for --steps steps:
   tokens/s and model FLOPs utilisation (MFU) against the bf16 matmul rate of this GPU,
   measured in the same run (8192^3 torch.matmul).
2. Memory and speed of LoRA on 8-bit and on 4-bit (NF4) base weights (bitsandbytes, peft,
   paged 8-bit AdamW on the adapters) against the bf16 full finetuning, side by side.
Without CUDA it exits with code 2 and a one-line reason, unless --cpu-smoke is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

T5_BASE = dict(d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12,
               feed_forward_proj="gated-gelu", vocab_size=32128, tie_word_embeddings=False, dropout_rate=0.0,
               decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
T5_SMOKE = dict(T5_BASE, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4,
                vocab_size=512)


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


def model_flops_per_step(config, batch: int, s: int, t: int) -> float:
    """Training FLOPs of one step: 6 x parameters x tokens through each stack, plus
    attention scores and values (encoder self S^2, decoder self T^2 and cross T*S)."""
    d, layers, ff = config.d_model, config.num_layers, config.d_ff
    inner = config.num_heads * config.d_kv
    attn = 4 * d * inner
    mlp = 3 * d * ff  # gated-GELU: two input projections and one output
    enc, dec = layers * (attn + mlp), layers * (2 * attn + mlp)
    head = d * config.vocab_size
    dense = 6 * batch * (s * enc + t * (dec + head))
    scores = 12 * batch * layers * inner * (s * s + t * t + t * s)
    return dense + scores


def train_arm(name, model, device, batch, s, t, steps, vocab, lr, bf16, paged_8bit):
    """Train `steps` steps on random tokens; returns (seconds per step, peak memory GB)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if paged_8bit:
        import bitsandbytes as bnb

        opt = bnb.optim.PagedAdamW8bit(params, lr=lr)
    else:
        opt = torch.optim.AdamW(params, lr=lr, fused=device.type == "cuda")
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(3, vocab, (batch, s), generator=gen).to(device)
    y = torch.randint(3, vocab, (batch, t), generator=gen).to(device)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warmup = min(5, max(1, steps // 10))
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    per_step = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else float("nan")
    print(f"  {name}: {per_step * 1000:.1f} ms/step, loss {float(loss.detach()):.3f}", flush=True)
    return per_step, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--quant-steps", type=int, default=50, help="steps per LoRA / quantization arm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--source", type=int, default=256)
    ap.add_argument("--target", type=int, default=256)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, few steps, fp32, on CPU")
    args = ap.parse_args()

    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from cotdistill.students.model import apply_lora

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("train_gpu.py: no CUDA device here; run it on a GPU (or with --cpu-smoke to check the code path)",
              file=sys.stderr)
        return 2
    if args.cpu_smoke:
        args.steps, args.quant_steps, args.batch_size, args.source, args.target = 3, 2, 4, 32, 16
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    config = T5Config(**(T5_SMOKE if args.cpu_smoke else T5_BASE))
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    n_params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    dtype = torch.bfloat16 if bf16 else torch.float32
    print(f"device: {name}; torch {torch.__version__}; model: T5 v1.1 {'base' if not args.cpu_smoke else 'smoke'} "
          f"from config, {n_params / 1e6:.1f}M params; batch {args.batch_size} x {args.source}+{args.target} tokens; "
          f"{'bf16 autocast' if bf16 else 'fp32'}", flush=True)
    peak_rate = matmul_rate(device, dtype, 8192 if device.type == "cuda" else 512, 50 if device.type == "cuda" else 5)
    print(f"measured {dtype} matmul rate: {peak_rate / 1e12:.3g} TFLOP/s", flush=True)

    with tempfile.TemporaryDirectory() as base:
        model.save_pretrained(base)  # the quantized arms load these same weights
        model.to(device)
        per_step, peak = train_arm("bf16 full" if bf16 else "fp32 full", model, device, args.batch_size, args.source,
                                   args.target, args.steps, config.vocab_size, 1e-4, bf16, False)
        tokens = args.batch_size * (args.source + args.target)
        flops = model_flops_per_step(config, args.batch_size, args.source, args.target)
        print(f"full finetuning: {tokens / per_step:,.0f} tokens/s, {flops / per_step / 1e12:.3g} TFLOP/s model, "
              f"MFU {100 * flops / per_step / peak_rate:.1f}% of the measured matmul rate, "
              f"peak memory {peak:.2f} GB (nan: not measured on CPU)")
        rows = [("full " + ("bf16" if bf16 else "fp32"), per_step, peak)]
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        for quant in ("8bit", "4bit"):
            qmodel = _load_quantized(base, quant, dtype)
            lora = apply_lora(qmodel, 16, 32, 0.0, False)
            ps, pk = train_arm(f"{quant} + LoRA", lora, device, args.batch_size, args.source, args.target,
                               args.quant_steps, config.vocab_size, 3e-4, bf16, True)
            rows.append((f"{quant} + LoRA r=16", ps, pk))
            del qmodel, lora
            if device.type == "cuda":
                torch.cuda.empty_cache()
    # Memory columns are nan on CPU (only CUDA tracks peak allocation).
    print(f"\n{'arm':<18}{'ms/step':>9}{'tokens/s':>11}{'peak GB':>9}{'speed vs full':>15}{'memory vs full':>16}")
    for label, ps, pk in rows:
        print(f"{label:<18}{ps * 1000:>9.1f}{tokens / ps:>11,.0f}{pk:>9.2f}{rows[0][1] / ps:>14.2f}x"
              f"{pk / rows[0][2] if rows[0][2] == rows[0][2] else float('nan'):>15.2f}x")
    return 0


def _load_quantized(folder: str, quantization: str, dtype):
    """The saved random-weight T5 with bitsandbytes base weights (on the GPU when there is one)."""
    import torch
    from transformers import T5ForConditionalGeneration

    from cotdistill.teachers.hf_local import quantization_config

    return T5ForConditionalGeneration.from_pretrained(
        folder, dtype=dtype, quantization_config=quantization_config(quantization),
        device_map="auto" if torch.cuda.is_available() else None)


if __name__ == "__main__":
    sys.exit(main())
