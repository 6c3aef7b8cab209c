"""The same sentence-transformers model, run by ONNX Runtime.

The loaded PyTorch model (all its modules: transformer, pooling, normalize) is
traced into an ONNX graph in memory when the embedder starts (about 2 s, no
file written), and ONNX Runtime runs that graph. Before it is used, its
vectors are compared with PyTorch's on texts of every length up to truncation,
one at a time and padded in a batch; any difference beyond float noise is an
error and the caller keeps PyTorch. On this project's CPU it encodes one
question in about a third of PyTorch's time (see the README's measured figures).
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.embedders.base import EmbedderError, normalize

if TYPE_CHECKING:
    from indexer.embedders.sentence_transformer import SentenceTransformerEmbedder

# Texts of many lengths, the last longer than the model's 256-token window.
PROBES = [
    "relu",
    "why do we need relu",
    "How big is the weight matrix of nn.Linear(784, 10), and why that shape?",
    "Is the gradient ever exactly zero at the end of training, or does it just get small? "
    "I saw the loss flatten out around epoch 30 and I am not sure what that means.",
    "padding " * 300,
]
# The model's inputs, and the field of a `tokenizers.Encoding` that holds each.
FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
# A model call takes at most this many (padded) tokens, so that long texts go in
# small batches: attention memory grows with the square of the length.
MAX_BATCH_TOKENS = 4096
# 1 - cosine between the two runtimes' vectors; float32 noise is about 1e-7.
MAX_DIFFERENCE = 1e-4


class OnnxEmbedder:
    """Encodes with ONNX Runtime the graph traced from a loaded PyTorch embedder."""

    runtime = "onnx"

    def __init__(self, reference: SentenceTransformerEmbedder, *, batch_size: int = 32):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EmbedderError("onnxruntime is not installed") from None
        self.name, self.dimension = reference.name, reference.dimension
        self.batch_size = batch_size
        graph, self._inputs = _trace(reference)
        self._tokenizer, self._pad_id = _tokenizer(reference, self._inputs)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Worker threads spin between the graph's steps (without it one question takes
        # ~50% longer) but stop when a run ends, leaving the cores to the server.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self._session = ort.InferenceSession(graph, options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise EmbedderError(f"ONNX Runtime could not load the traced model: {e}") from e
        # One run at a time: each already uses every core.
        self._lock = threading.Lock()
        self._check_against(reference)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Encode texts into unit vectors, in batches of similar length."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            # As many texts as fit the token budget; sorted, so the last is the longest.
            end = start + 1
            while (end < len(order) and end - start < self.batch_size
                   and (end - start + 1) * len(encodings[order[end]].ids) <= MAX_BATCH_TOKENS):
                end += 1
            rows = order[start:end]
            out[rows] = self._run([encodings[i] for i in rows])
            start = end
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        """One model call on tokenized texts, padded here to the longest of them."""
        width = max(len(e.ids) for e in encodings)
        feed = {}
        for name in self._inputs:
            pad = self._pad_id if name == "input_ids" else 0
            array = np.full((len(encodings), width), pad, dtype=np.int64)
            for row, e in enumerate(encodings):
                values = getattr(e, FIELDS[name])
                array[row, : len(values)] = values
            feed[name] = array
        with self._lock:
            (vectors,) = self._session.run(None, feed)
        return normalize(vectors)

    def _check_against(self, reference: SentenceTransformerEmbedder) -> None:
        """Refuse to serve unless this runtime gives the reference's vectors."""
        expected = reference.embed(PROBES)
        got = np.vstack([self.embed(PROBES), *(self.embed([t]) for t in PROBES)])
        worst = float(1.0 - (np.vstack([expected, expected]) * got).sum(axis=1).min())
        if not worst <= MAX_DIFFERENCE:
            raise EmbedderError(
                f"the ONNX graph's vectors differ from PyTorch's (1 - cosine up to {worst:.2g})"
            )


def _tokenizer(reference: SentenceTransformerEmbedder, inputs: list[str]) -> tuple[Any, int]:
    """The model's fast tokenizer, called directly (it truncates as sentence-transformers
    does, in a tenth of the time of its preprocess()), and the padding token's id."""
    hf = reference.tokenizer
    backend = getattr(hf, "backend_tokenizer", None)
    pad_id = hf.pad_token_id
    unknown = set(inputs) - set(FIELDS)
    if backend is None or unknown or pad_id is None:
        raise EmbedderError(f"the model's tokenizer or its inputs are not supported: "
                            f"{sorted(unknown) or 'not a fast tokenizer with a pad token'}")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.enable_truncation(max_length=reference.max_length)
    tokenizer.no_padding()
    return tokenizer, int(pad_id)


def _trace(reference: SentenceTransformerEmbedder) -> tuple[bytes, list[str]]:
    """The reference model as ONNX bytes, and the names of its tensor inputs."""
    import torch

    model = reference.model
    sample = reference.preprocess(["a short one", "a somewhat longer sentence, to be padded"])
    names = [k for k, v in sample.items() if isinstance(v, torch.Tensor)]

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> Any:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    buffer = io.BytesIO()
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"vector": {0: "batch"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on constant shapes
            torch.onnx.export(Graph().eval(), tuple(sample[n] for n in names),
                              buffer,  # type: ignore[arg-type]  # a file object works too
                              input_names=names, output_names=["vector"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
    except Exception as e:  # the tracer raises many kinds: say it and keep PyTorch
        raise EmbedderError(f"the model could not be traced to ONNX: {e}") from e
    return buffer.getvalue(), names
