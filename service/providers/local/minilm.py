"""all-MiniLM-L6-v2 on onnxruntime: tokenize, run, mean-pool, L2-normalise.

Exactly sentence-transformers' recipe for this model: WordPiece with [CLS]/[SEP],
truncation at 256 word pieces, mean pooling over the attention mask, then L2
normalisation. Not thread-safe by itself: the batcher calls it from one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_TOKENS = 256
DIMENSIONS = 384
CLS_ID, SEP_ID, PAD_ID = 101, 102, 0


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: tuple[int, ...]
    truncated: bool


class MiniLM:
    def __init__(self, model: Path, tokenizer: Path, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.runs = 0  # ONNX runs so far: lets tests and metrics observe batching

    def tokenize(self, texts: Sequence[str]) -> list[Encoded]:
        out = []
        for encoding in self._tokenizer.encode_batch(list(texts)):
            ids = encoding.ids
            truncated = len(ids) > MAX_TOKENS
            if truncated:  # keep [CLS] + the first 254 pieces + [SEP], as BERT truncates
                ids = [*ids[: MAX_TOKENS - 1], SEP_ID]
            out.append(Encoded(tuple(ids), truncated))
        return out

    @staticmethod
    def from_ids(ids: Sequence[int]) -> Encoded:
        """Caller-supplied token ids, used as given up to the model's limit."""
        return Encoded(tuple(ids[:MAX_TOKENS]), len(ids) > MAX_TOKENS)

    def embed(self, batch: Sequence[Encoded]) -> np.ndarray:
        """One ONNX run for the whole batch; rows are unit vectors of 384 float32."""
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, encoded in enumerate(batch):
            ids[row, : len(encoded.ids)] = encoded.ids
            mask[row, : len(encoded.ids)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        self.runs += 1
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit
