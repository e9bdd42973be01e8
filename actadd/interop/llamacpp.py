"""Run control vectors in real llama.cpp (``llama-cpp-python``) beside actadd.

Needs the optional extra ``llama-cpp-python`` (``pip install -e '.[llamacpp]'``, or
``make setup-interop``). :class:`LlamaCpp` opens a GGUF model (default: the same embedded
SmolLM2 file actadd converts) in llama.cpp and applies control-vector files exactly as
llama.cpp's ``--control-vector-scaled FILE:s`` does: the files' ``direction.N`` tensors are
summed (each times its strength) into llama.cpp's per-layer buffer (layer 1 first, as
``common_control_vector_load`` builds it; llama-cpp-python does not bind that helper) and set
with ``llama_set_adapter_cvec`` over layers ``1..n_layer`` (llama.cpp's defaults).

**Token ids, not text.** Every function here takes the token ids actadd uses, leading token
included: on SmolLM2 actadd prepends ``<|endoftext|>`` (id 0), which llama.cpp would not
(the GGUF sets ``add_bos_token = false``). Feeding llama.cpp the same ids keeps positions —
and the all-position addition on the first token — identical on both sides.

**Compare shifts, not logits.** llama.cpp quantizes activations for its Q4_1 matmuls, so
its unsteered log-probs differ from actadd's fp32 ones (on the test prompts: up to ~0.6 nats
over the vocabulary, ~0.25 among the 50 likeliest tokens). The steering effect
is the *shift* (steered − unsteered log-probs) on each side; :func:`compare_shifts` reports
their correlation over the whole vocabulary.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from actadd.core.generation import GREEDY, generate
from actadd.core.steering import steering
from actadd.core.vectors import SteeringVector
from actadd.errors import ActAddError, VectorFileError
from actadd.interop.gguf import load_control_vector, read_control_vector
from actadd.runtime.tokens import encode, single_token_id

__all__ = [
    "ControlFiles",
    "LlamaCpp",
    "LlamaCppUnavailable",
    "compare_completions",
    "compare_shifts",
    "control_vector_data",
]

ControlFiles = str | Path | Sequence[str | Path | tuple[str | Path, float]]


class LlamaCppUnavailable(ActAddError, ImportError):
    """llama-cpp-python is not installed."""


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise LlamaCppUnavailable(
            "llama-cpp-python is not installed; run `make setup-interop` (or "
            "`pip install -e '.[llamacpp]'`, which compiles llama.cpp for several minutes)."
        ) from exc
    return llama_cpp


def control_vector_data(files: ControlFiles, n_layer: int | None = None) -> tuple[np.ndarray, int]:
    """The buffer llama.cpp's ``common_control_vector_load`` builds from control-vector files.

    ``files``: a path, or a list of paths and ``(path, strength)`` pairs. Returns
    ``(data, n_embd)`` with ``data`` float32 of length ``n_embd * max(N)`` (with ``n_layer``:
    ``n_embd * (n_layer - 1)``, zero-filled), where ``direction.N`` (times its strength,
    summed over files) sits at ``[(N-1)·n_embd, N·n_embd)``.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    items = [(f, 1.0) if isinstance(f, (str, Path)) else (f[0], float(f[1])) for f in files]
    if not items:
        raise VectorFileError("No control-vector files given.")
    data = np.zeros(0, dtype=np.float32)
    n_embd = None
    for path, strength in items:
        cv = read_control_vector(path)
        if n_embd is not None and cv.n_embd != n_embd:
            raise VectorFileError(
                f"{path}: n_embd {cv.n_embd} differs from the other files' {n_embd}."
            )
        n_embd = cv.n_embd
        size = n_embd * max(cv.directions)
        if data.size < size:
            data = np.concatenate([data, np.zeros(size - data.size, dtype=np.float32)])
        for n, row in cv.directions.items():
            data[(n - 1) * n_embd : n * n_embd] += row * np.float32(strength)
    if n_layer is not None:
        full = n_embd * (n_layer - 1)
        if data.size > full:
            # llama.cpp ignores layers past the last block; say so instead
            raise VectorFileError(
                f"The control vectors reach direction.{data.size // n_embd}, past the model's "
                f"last block (direction.1..{n_layer - 1} allowed)."
            )
        # Zero-fill to every layer: llama_set_adapter_cvec copies only the layers that `len`
        # covers and leaves the rest as they were, so a shorter vector set after a longer
        # one would inherit the old one's upper layers (src/llama-adapter.cpp, apply()).
        data = np.concatenate([data, np.zeros(full - data.size, dtype=np.float32)])
    return data, n_embd


class LlamaCpp:
    """A GGUF model in llama.cpp, read one next-token distribution at a time.

    >>> with LlamaCpp() as llm:                       # the embedded SmolLM2 GGUF
    ...     ids = model.to_tokens("I hate you because")[0].tolist()  # leading token included
    ...     base = llm.next_token_logprobs(ids)
    ...     llm.set_control_vector("love.gguf", scale=1.0)
    ...     shift = llm.next_token_logprobs(ids) - base

    ``with`` frees the model when the block ends; :meth:`close` does the same. Without
    either, it is freed when the object is collected, or at the latest when the interpreter
    exits (before the modules llama-cpp-python's own finalizer needs are torn down, so a
    script that never closes it ends without a ``Llama.__del__`` traceback).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 512,
        n_threads: int = 1,
        all_logits: bool = False,
    ) -> None:
        llama_cpp = _llama_cpp()
        if model_path is None:
            from actadd.models import smollm2_path

            model_path = smollm2_path()
        self.model_path = Path(model_path)
        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=all_logits,
            verbose=False,
        )
        self.n_embd = int(self.llm.n_embd())
        self.n_layer = int(llama_cpp.llama_model_n_layer(self.llm.model))
        self.n_vocab = int(self.llm.n_vocab())
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self._cvec: np.ndarray | None = None
        self.control_files: list[tuple[str, float]] = []
        # runs once: from close(), when self is collected, or at exit (atexit, while the
        # modules are alive); the Llama object's own __del__ then finds nothing to free
        self._finalizer = weakref.finalize(self, self.llm.close)

    # ------------------------------------------------------------------ control vectors

    def set_control_vector(self, files: ControlFiles, scale: float = 1.0) -> None:
        """Apply control-vector file(s) like ``--control-vector-scaled FILE:scale``.

        ``files`` is a path or a list of paths / ``(path, strength)`` pairs; ``scale``
        multiplies every strength. Replaces any control vector already set.
        """
        if isinstance(files, (str, Path)):
            files = [files]
        items = [(f, 1.0) if isinstance(f, (str, Path)) else (f[0], float(f[1])) for f in files]
        items = [(str(p), s * float(scale)) for p, s in items]
        data, n_embd = control_vector_data(items, self.n_layer)
        if n_embd != self.n_embd:
            raise VectorFileError(
                f"Control vectors have n_embd {n_embd} but {self.model_path.name} has "
                f"n_embd {self.n_embd}."
            )
        self._cvec = np.ascontiguousarray(data, dtype=np.float32)  # llama.cpp copies it
        ptr = self._cvec.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        err = self._lib.llama_set_adapter_cvec(
            self.llm.ctx, ptr, self._cvec.size, n_embd, 1, self.n_layer
        )
        if err:
            raise VectorFileError(f"llama.cpp refused the control vector (error {err}).")
        self.control_files = items

    def clear_control_vector(self) -> None:
        """Remove the control vector (llama.cpp keeps the buffer allocated, disabled)."""
        self._lib.llama_set_adapter_cvec(self.llm.ctx, None, 0, self.n_embd, -1, -1)
        self.control_files = []

    # ------------------------------------------------------------------ forward

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """llama.cpp's own tokenization (no BOS added for SmolLM2: ``add_bos_token=false``)."""
        return self.llm.tokenize(text.encode(), add_bos=True, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    def next_token_logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits of the token after ``ids`` (evaluated from scratch; the KV cache is reset)."""
        ids = [int(i) for i in ids]
        if not ids:
            raise ActAddError("next_token_logits needs at least one token id.")
        self.llm.reset()
        self.llm.eval(ids)
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)

    def next_token_logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """Log-softmax of :meth:`next_token_logits` (float64)."""
        logits = self.next_token_logits(ids)
        m = logits.max()
        return logits - (m + np.log(np.exp(logits - m).sum()))

    def logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """Log-softmax of the logits at every position of ``ids`` ([len(ids), n_vocab],
        float64); needs ``LlamaCpp(..., all_logits=True)``."""
        if not self.llm._logits_all:
            raise ActAddError("logprobs() needs LlamaCpp(..., all_logits=True).")
        ids = [int(i) for i in ids]
        self.llm.reset()
        self.llm.eval(ids)
        logits = np.array(self.llm.scores[: len(ids)], dtype=np.float64)
        m = logits.max(-1, keepdims=True)
        return logits - (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))

    def greedy(self, ids: Sequence[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of ``ids`` (argmax each step, KV cache reused)."""
        ids = [int(i) for i in ids]
        self.llm.reset()
        out: list[int] = []
        feed = ids
        for _ in range(max_new_tokens):
            self.llm.eval(feed)
            ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
            tok = int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())
            out.append(tok)
            feed = [tok]
        return out

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Free the model and its context (again: nothing happens)."""
        self._finalizer()

    def __enter__(self) -> LlamaCpp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------- side by side


def _actadd_logprobs(model, ids: list[int], vectors: list[SteeringVector] | None) -> np.ndarray:
    tokens = torch.tensor([ids], device=model.cfg.device)
    with torch.no_grad():
        if vectors:
            with steering(model, vectors, align="all"):
                logits = model(tokens)[0, -1]
        else:
            logits = model(tokens)[0, -1]
    return torch.log_softmax(logits.double(), -1).cpu().numpy()


def _as_vectors(model, vectors) -> list[SteeringVector]:
    if isinstance(vectors, (str, Path)):
        return list(load_control_vector(vectors, model, allow_other_model=True).values())
    if isinstance(vectors, SteeringVector):
        return [vectors]
    if isinstance(vectors, Mapping):
        return list(vectors.values())
    return list(vectors)


def compare_shifts(
    model,
    llm: LlamaCpp,
    path: str | Path,
    prompts: Sequence[str],
    *,
    scale: float = 1.0,
    tokens: Sequence[str] = (),
) -> pd.DataFrame:
    """Next-token log-prob shifts of one control-vector file in actadd and in llama.cpp.

    For each prompt (tokenized by actadd, leading token included, and fed to llama.cpp as
    the same ids), the shift is steered − unsteered log-probs of the next token: actadd adds
    every ``direction.N`` of the file (times ``scale``) at ``resid_pre N+1`` with
    ``align="all"``; llama.cpp applies the file with strength ``scale``.

    Returns one row per prompt: ``prompt, n_tokens, corr_shift`` (Pearson over the whole
    vocabulary), ``slope`` (llama.cpp's shift regressed on actadd's: 1 = same size),
    ``max_shift_actadd, max_shift_llamacpp`` (largest |shift|), and the top token of each of
    the four distributions. With ``tokens`` (single-token strings such as ``" love"``), one
    row per (prompt, token) instead: ``prompt, token, actadd, actadd_steered, llamacpp,
    llamacpp_steered`` (log-probs) and ``shift_actadd, shift_llamacpp``.
    """
    single = "compare_shifts(tokens=...) takes single tokens (mind the leading space, e.g. ' love')"
    token_ids = [single_token_id(model, t, "token", single) for t in tokens]
    vectors = [scale * v for v in _as_vectors(model, path)]
    rows = []
    for prompt in prompts:
        ids = encode(model, prompt, prepend_bos=True)
        a0 = _actadd_logprobs(model, ids, None)
        a1 = _actadd_logprobs(model, ids, vectors)
        llm.clear_control_vector()
        b0 = llm.next_token_logprobs(ids)
        llm.set_control_vector(path, scale)
        b1 = llm.next_token_logprobs(ids)
        llm.clear_control_vector()
        sa, sb = a1 - a0, b1 - b0
        if token_ids:
            for text, t in zip(tokens, token_ids):
                rows.append(
                    dict(
                        prompt=prompt,
                        token=text,
                        actadd=float(a0[t]),
                        actadd_steered=float(a1[t]),
                        llamacpp=float(b0[t]),
                        llamacpp_steered=float(b1[t]),
                        shift_actadd=float(sa[t]),
                        shift_llamacpp=float(sb[t]),
                    )
                )
            continue
        ca, cb = sa - sa.mean(), sb - sb.mean()
        tok = lambda lp: model.to_string([int(lp.argmax())])  # noqa: E731
        rows.append(
            dict(
                prompt=prompt,
                n_tokens=len(ids),
                corr_shift=float(np.corrcoef(sa, sb)[0, 1]),
                slope=float(np.dot(ca, cb) / np.dot(ca, ca)),
                max_shift_actadd=float(np.abs(sa).max()),
                max_shift_llamacpp=float(np.abs(sb).max()),
                top_actadd=tok(a0),
                top_actadd_steered=tok(a1),
                top_llamacpp=tok(b0),
                top_llamacpp_steered=tok(b1),
            )
        )
    return pd.DataFrame(rows)


def compare_completions(
    model,
    llm: LlamaCpp,
    path: str | Path,
    prompts: Sequence[str],
    *,
    scale: float = 1.0,
    max_new_tokens: int = 20,
) -> pd.DataFrame:
    """Greedy completions, unsteered and steered by one control-vector file, in actadd
    (``align="all"``) and in llama.cpp, from the same token ids. One row per prompt:
    ``prompt, actadd, actadd_steered, llamacpp, llamacpp_steered``."""
    vectors = [scale * v for v in _as_vectors(model, path)]

    def actadd_greedy(prompt: str, vecs) -> str:
        df = generate(
            model,
            prompt,
            vecs or None,
            "all",
            max_new_tokens=max_new_tokens,
            sampling=GREEDY,
            progress=False,
        )
        return df["completion"].iloc[0]

    rows = []
    for prompt in prompts:
        ids = encode(model, prompt, prepend_bos=True)
        llm.clear_control_vector()
        base = llm.detokenize(llm.greedy(ids, max_new_tokens))
        llm.set_control_vector(path, scale)
        steered = llm.detokenize(llm.greedy(ids, max_new_tokens))
        llm.clear_control_vector()
        rows.append(
            dict(
                prompt=prompt,
                actadd=actadd_greedy(prompt, None),
                actadd_steered=actadd_greedy(prompt, vectors),
                llamacpp=base,
                llamacpp_steered=steered,
            )
        )
    return pd.DataFrame(rows)
