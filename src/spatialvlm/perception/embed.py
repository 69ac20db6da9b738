"""Text embeddings for the ambiguity rule: which object names / captions are near-duplicates.

Backends: ``sentence-transformers:<id or path>`` (needs the optional ``sentence-transformers`` package) and
``hf-mean-pool:<id or path>`` (any transformers encoder; mean of the last hidden states over real tokens).
Both return unit-norm float32 rows, so a dot product is the cosine similarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loading import (
    ModelNotFoundError,
    TorchBackend,
    load_pretrained,
    looks_like_path,
    missing_weights_message,
    quiet_transformers,
)
from .protocols import TextEmbedder


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class SentenceTransformersEmbedder(TorchBackend):
    kind = "embedder"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64):
        super().__init__(spec, model, device, dtype, batch_size)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "the 'sentence-transformers' embedder needs the optional package: pip install sentence-transformers "
                "(or use 'hf-mean-pool:<id or folder>', which only needs transformers)") from exc
        if looks_like_path(model) and not Path(model).expanduser().is_dir():
            raise ModelNotFoundError(missing_weights_message(model, "sentence-transformers text embedding",
                                                             "no such directory"))
        try:
            self.model = SentenceTransformer(str(Path(model).expanduser()) if looks_like_path(model) else model,
                                             device=self.device)
        except OSError as exc:
            raise ModelNotFoundError(missing_weights_message(model, "sentence-transformers text embedding",
                                                             str(exc))) from exc

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, int(self.model.get_sentence_embedding_dimension() or 0)), dtype=np.float32)
        e = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
        return _unit(e)


class MeanPoolEmbedder(TorchBackend):
    kind = "embedder"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64,
                 max_length: int = 64):
        from transformers import AutoModel, AutoTokenizer

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.max_length = int(max_length)
        self.tokenizer = load_pretrained(AutoTokenizer, model, "text embedding (tokenizer)")
        self.model = load_pretrained(AutoModel, model, "text embedding", dtype=self.dtype).to(self.device).eval()

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        rows = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            tok = {k: v.to(self.device) for k, v in tok.items()}
            with torch.inference_mode():
                hidden = self.model(**tok).last_hidden_state.float()
            m = tok["attention_mask"].unsqueeze(-1).float()
            rows.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).cpu().numpy())
        if not rows:
            return np.zeros((0, int(self.model.config.hidden_size)), dtype=np.float32)
        return _unit(np.concatenate(rows, axis=0))


def near_duplicate_groups(names: list[str], embedder: TextEmbedder | None, threshold: float = 0.85) -> list[list[int]]:
    """Groups (index lists, each of 2 or more, sorted) of names that mean the same thing: cosine similarity of
    their embeddings >= ``threshold``, chained transitively. Names equal after lower-casing and trimming are always
    grouped, also without an embedder (``embedder=None`` -> exact matching only). Singletons are not returned."""
    n = len(names)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    keys = [" ".join(str(s).lower().split()) for s in names]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in first:
            union(first[k], i)
        else:
            first[k] = i
    if embedder is not None and len(first) > 1:
        uniq = list(first)
        e = np.asarray(embedder.embed(uniq), dtype=np.float64)
        if e.shape[0] != len(uniq):
            raise ValueError(f"embedder returned {e.shape[0]} rows for {len(uniq)} texts")
        sim = e @ e.T
        ii, jj = np.nonzero(np.triu(sim >= threshold, k=1))
        for a, b in zip(ii, jj):
            union(first[uniq[a]], first[uniq[b]])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def similarity_grouper(spec: str | None, threshold: float = 0.85, device: str = "auto", dtype: str = "auto"):
    """A ``similar(names) -> groups`` callable for :func:`spatialvlm.qa.naming.assign_names` /
    ``label_groups``, backed by the embedder ``spec`` (loaded on first use, once per process). ``None`` when
    ``spec`` is None (exact matching only)."""
    if not spec:
        return None

    def similar(names: list[str]) -> list[list[int]]:
        from .registry import get_backend

        return near_duplicate_groups(list(names), get_backend("embedder", spec, device=device, dtype=dtype),
                                     threshold)

    similar.spec = spec  # type: ignore[attr-defined]
    similar.threshold = threshold  # type: ignore[attr-defined]
    return similar
