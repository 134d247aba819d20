"""Batched decoding of a student: greedy, beam search or sampling, with or without the
external calculator. T5 students are padded on the right (`decode`); causal students on
the left, their completion cut from the prompt and stopped at EOS or a stop string
(`decode_causal`, which `decode` hands them to).

The calculator is a logits processor (text/calculator_processor.py), so it rides on
`generate`'s own batching, beam bookkeeping and stopping; finished rows are left to
`generate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cotdistill.text.calculator_processor import CALCULATOR_FORCING, calculator_processor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: greedy (default), beam search (num_beams > 1) or sampling."""

    max_new_tokens: int = 128
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_source_length: int = 512
    seed: int = 0


def decode(
    model,
    tokenizer,
    questions: list[str],
    batch_size: int,
    options: DecodeOptions | None = None,
    *,
    calculator: bool = False,
    progress: bool = True,
    stop_strings: tuple[str, ...] = (),
    forcing: str = CALCULATOR_FORCING,
) -> list[str]:
    """Decode `questions` in batches of similar length; outputs come back in input order.

    `options` says how (greedy by default); T5 is padded on the right with an attention
    mask, as it was trained, and stops at EOS. A decoder-only model goes to
    `decode_causal` (with `stop_strings`), its `questions` being the prompts.
    """
    if not model.config.is_encoder_decoder:
        return decode_causal(
            model,
            tokenizer,
            questions,
            batch_size,
            options,
            calculator=calculator,
            progress=progress,
            stop_strings=stop_strings,
            forcing=forcing,
        )
    opts = options or DecodeOptions()
    tokenizer.padding_side = "right"
    texts = _in_batches(
        model,
        tokenizer,
        questions,
        batch_size,
        opts,
        _generate_kwargs(tokenizer, opts),
        calculator,
        progress,
        completion_only=False,
        forcing=forcing,
    )
    return [t.strip() for t in texts]


def _in_batches(
    model,
    tokenizer,
    texts: list[str],
    batch_size: int,
    opts: DecodeOptions,
    gen_kwargs: dict,
    calculator: bool,
    progress: bool,
    completion_only: bool,
    forcing: str = CALCULATOR_FORCING,
) -> list[str]:
    """What `model` generates for `texts`, run in batches of similar length and returned in
    input order, decoded without special tokens. Each batch is tokenized as the tokenizer is
    set up (padding side, truncation side). `completion_only`: a causal model's output
    starts with its padded prompt, which is cut off (and which the calculator only reads)."""
    import torch
    from tqdm import tqdm
    from transformers import LogitsProcessorList

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        for b in tqdm(
            range(0, len(order), batch_size),
            desc="decode" + (" +calc" if calculator else ""),
            unit="batch",
            disable=not progress,
        ):
            idx = order[b : b + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=opts.max_source_length,
            ).to(device)
            start = enc["input_ids"].shape[1] if completion_only else 0
            processors = LogitsProcessorList([calculator_processor(tokenizer, start, forcing)] if calculator else [])
            out = model.generate(**enc, **gen_kwargs, logits_processor=processors)
            for i, text in zip(idx, tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)):
                outputs[i] = text
    return outputs


def _generate_kwargs(tokenizer, opts: "DecodeOptions", stop_strings: tuple[str, ...] = ()) -> dict:
    """`generate` settings shared by the T5 and causal decoders (seeds torch when sampling);
    stop strings need the tokenizer passed to `generate` too."""
    import torch

    kwargs = dict(
        max_new_tokens=opts.max_new_tokens,
        num_beams=opts.num_beams,
        do_sample=opts.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
    if opts.do_sample:
        kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
        torch.manual_seed(opts.seed)
    return kwargs


def cut_at_stop(text: str, stop_strings: tuple[str, ...]) -> str:
    """`text` up to the first stop string (generate stops after writing one)."""
    cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=len(text))
    return text[:cut]


def decode_causal(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int,
    options: DecodeOptions | None = None,
    *,
    calculator: bool = False,
    progress: bool = True,
    stop_strings: tuple[str, ...] = (),
    forcing: str = CALCULATOR_FORCING,
) -> list[str]:
    """Decode the completions of a causal student's `prompts`, in batches of similar length.

    The prompts are padded on the left, so that every row's completion starts at the same
    position (generate takes the positions from the attention mask: a row's outputs are
    those of its unpadded prompt), and truncated on the left to options.max_source_length.
    A row stops at EOS or once it writes a stop string; the output is the completion
    alone, cut before the stop string. The calculator looks at the completion only.
    """
    from cotdistill.train.students.causal import prepare_tokenizer

    opts = options or DecodeOptions()
    # Left padding and truncation, and EOS as the pad where there is none (Llama 3, GPT-2),
    # as in training: the one rule, also for a tokenizer loaded straight from a folder.
    prepare_tokenizer(tokenizer)
    texts = _in_batches(
        model,
        tokenizer,
        prompts,
        batch_size,
        opts,
        _generate_kwargs(tokenizer, opts, stop_strings),
        calculator,
        progress,
        completion_only=True,
        forcing=forcing,
    )
    return [cut_at_stop(t, stop_strings).strip() for t in texts]
