"""The raw baselines for the local models: onnxruntime and llama-cpp-python, no gateway.

`python -m bench.local_raw embed|rerank|chat ...` prints one JSON line. bench.run pins
it to the gateway's core, so "gateway vs raw" compares the same core doing the same
work. The model is loaded the way service/providers/local does it (same files, same
session options, one thread, same tokenizer recipe, same pooling; the same GGUF with
its own chat template and one thread), but without any of the service's code around
it, so the gap is exactly what the gateway adds. Tokenisation is timed on both sides.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from tokenizers import Tokenizer

from bench.corpus import CHAT_MAX_TOKENS, CHAT_PROMPT, RERANK_DOCUMENTS, RERANK_QUERY, SENTENCES
from service.providers.local.assets import MINILM_ONNX, MINILM_TOKENIZER, SMOLLM2_GGUF

MAX_TOKENS = 256  # minilm.py: truncation at 256 word pieces
SEP_ID = 102


class RawMiniLM:
    """all-MiniLM-L6-v2: WordPiece, one ONNX run per batch, mean pooling, L2 norm."""

    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(MINILM_ONNX.path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(MINILM_TOKENIZER.path()))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encoded = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        encoded = [ids if len(ids) <= MAX_TOKENS else [*ids[:255], SEP_ID] for ids in encoded]
        width = max(len(ids) for ids in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, seq in enumerate(encoded):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit


def _timed_loop(step: Any, duration: float, warmup: float) -> tuple[int, float]:
    """Run `step()` (returns items done) for warmup + duration s; items/s after warm-up."""
    end_warm = time.perf_counter() + warmup
    while time.perf_counter() < end_warm:
        step()
    start = time.perf_counter()
    items = 0
    while (now := time.perf_counter()) - start < duration:
        items += step()
    return items, now - start


def bench_embed(batch: int, duration: float, warmup: float) -> dict[str, float]:
    model = RawMiniLM()
    texts = itertools.cycle(SENTENCES)

    def step() -> int:
        model.embed([next(texts) for _ in range(batch)])
        return batch

    items, elapsed = _timed_loop(step, duration, warmup)
    return {"batch": batch, "sentences": items, "seconds": elapsed, "per_s": items / elapsed}


def bench_rerank(duration: float, warmup: float) -> dict[str, float]:
    """One rerank = one batch of query + documents, then cosine scores (as the service)."""
    model = RawMiniLM()

    def step() -> int:
        vectors = model.embed([RERANK_QUERY, *RERANK_DOCUMENTS])
        scores = vectors[1:] @ vectors[0]
        sorted(range(len(scores)), key=lambda i: -float(scores[i]))
        return 1

    items, elapsed = _timed_loop(step, duration, warmup)
    return {"requests": items, "seconds": elapsed, "per_s": items / elapsed}


class _StepCounter:
    """Counts sampled tokens, as service/providers/local/llm.py does."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        return scores


def bench_chat(duration: float) -> dict[str, float]:
    """Greedy generations of the same prompt as the HTTP run, back to back."""
    from llama_cpp import Llama, LogitsProcessorList
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llama = Llama(
        model_path=str(SMOLLM2_GGUF.path()),
        n_ctx=2048,
        n_threads=1,
        n_threads_batch=1,
        verbose=False,
    )
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token=llama.detokenize([eos], special=True).decode() if eos != -1 else "",
        bos_token=llama.detokenize([bos], special=True).decode() if bos != -1 else "",
        stop_token_ids=[eos] if eos != -1 else None,
    )
    rendered = formatter(messages=[{"role": "user", "content": CHAT_PROMPT}])

    def generate() -> int:
        counter = _StepCounter()
        for _ in llama.create_completion(
            prompt=rendered.prompt,
            max_tokens=CHAT_MAX_TOKENS,
            temperature=0.0,
            top_p=0.95,
            stop=rendered.stop or None,
            seed=1,
            logits_processor=LogitsProcessorList([counter]),
            stream=True,
        ):
            pass
        return counter.steps

    generate()  # warm-up: first run pays for allocations
    start = time.perf_counter()
    tokens = requests = 0
    while time.perf_counter() - start < duration:
        tokens += generate()
        requests += 1
    elapsed = time.perf_counter() - start
    return {"requests": requests, "tokens": tokens, "seconds": elapsed, "per_s": tokens / elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.local_raw", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("embed", "rerank", "chat"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.what == "embed":
        out = bench_embed(args.batch, args.duration, args.warmup)
    elif args.what == "rerank":
        out = bench_rerank(args.duration, args.warmup)
    else:
        out = bench_chat(args.duration)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
