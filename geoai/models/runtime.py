"""fp32 inference of the backbones through a graph runtime on CPU: OpenVINO or ONNX Runtime.

The backbone's forward pass (pixel_values -> pooled embedding, exactly what
`speed.FastEmbedder` gives) is exported once with `torch.onnx` (dynamic batch dimension;
transformers with eager attention, which every exporter handles) and run by OpenVINO when it
is installed, else ONNX Runtime. In fp32 on 2 cores they ran BEiT-base 1.5x and ResNet-50
2.4x faster than eager PyTorch on an Intel Xeon whose eager fp32 is already at 55% of its peak,
2.5x and 4x on a Zen 5 CPU where it is not (docs/benchmarks.md).

Answers stay fp32: OpenVINO is always given INFERENCE_PRECISION_HINT=f32 (by default it runs
bf16 on CPUs with AVX512-BF16/AMX, which moves MobileNetV2's embeddings to cosine 0.98). Every
graph is checked against the eager model on a probe batch; below a cosine of `MIN_COSINE` it
is dropped and the model runs eagerly, with a warning.

Exported graphs are cached (exporting BEiT-base takes 15-30 s, loading it back 1-2 s) in a
folder beside the checkpoint, as `graph-<runtime>.onnx` with a JSON key file naming the
weights digest and the export settings (opset, runtime and its version, torch version,
precision, input shape), the graph file's size and the eager embeddings of the probe batch.
OpenVINO also keeps its compiled model there (`openvino-compiled-<file stamp>/`: compiling BEiT-base takes 2.5-5 s on 2 cores, loading the compiled model 0.4 s). A cache
whose key differs (changed weights, another version), whose graph file has another size or
cannot be loaded, or whose graph gives other embeddings of the probe than recorded (foreign,
truncated, corrupt) is rebuilt, never used.

GEOAI_RUNTIME (auto|openvino|onnxruntime|torch, geoai.settings.runtime) picks the engine; CUDA
and reduced precision always stay with PyTorch.

Fork safety: OpenVINO and ONNX Runtime start native thread pools, and a process forked after
that can crash (a DataLoader worker forked from such a process died with SIGSEGV). Once any
graph is loaded (`graphs_loaded()`), nothing forks this process: the inference loaders
(embeddings.image_loader) decode images in threads, and training's DataLoaders take
`worker_context()`, a "forkserver" whose workers come from a clean server process.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from geoai import settings
from geoai.atomic import atomic_path
from geoai.models.pooling import pool_outputs

log = logging.getLogger(__name__)

GRAPH_RUNTIMES = ("openvino", "onnxruntime")
OPSET = 17
EXPORT_FORMAT = 1  # bump whenever the export itself changes: every cached graph is rebuilt
MIN_COSINE = 0.9999  # lowest cosine to eager on the probe batch for a graph to be used
PROBE_BATCH = 2

_graphs_loaded = threading.Event()  # set once this process holds a compiled graph
_warned: set[str] = set()


class GraphError(RuntimeError):
    """A graph cannot be exported, loaded or trusted; callers fall back to eager PyTorch."""


def installed(runtime: str) -> bool:
    """Whether the Python package of `runtime` ("openvino" or "onnxruntime") can be imported."""
    try:
        return importlib.util.find_spec(runtime) is not None
    except (ImportError, ValueError):
        return False


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def resolve_runtime(device: str | torch.device = "cpu", requested: str | None = None) -> str:
    """The engine that runs the backbones: "openvino", "onnxruntime" or "torch".

    requested: one of geoai.settings.RUNTIMES; None reads GEOAI_RUNTIME. CUDA always stays with
    PyTorch. A requested runtime that is not installed falls back (OpenVINO, ONNX Runtime,
    PyTorch, in that order) with a warning.
    """
    if torch.device(device).type != "cpu":
        return "torch"
    requested = settings.runtime() if requested is None else requested
    if requested == "torch":
        return "torch"
    if requested in GRAPH_RUNTIMES and installed(requested):
        return requested
    chosen = next((r for r in GRAPH_RUNTIMES if installed(r)), "torch")
    if requested in GRAPH_RUNTIMES:
        _warn_once(f"GEOAI_RUNTIME={requested} but {requested} is not installed; using {chosen}")
    return chosen


def runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino

        return openvino.__version__
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    return torch.__version__


def graphs_loaded() -> bool:
    """Whether this process holds a compiled graph (and so must not fork workers)."""
    return _graphs_loaded.is_set()


def worker_context() -> Any:
    """The multiprocessing context for DataLoader workers: None (the default, fork) while no
    graph is loaded in this process, else "forkserver", so no worker is forked from a process
    running OpenVINO or ONNX Runtime threads."""
    if not graphs_loaded():
        return None
    ctx = multiprocessing.get_context("forkserver")
    # The server imports the image-loading code once; each worker is then a cheap fork of it.
    ctx.set_forkserver_preload(["torch", "geoai.models.embeddings"])
    return ctx


@dataclass(frozen=True)
class GraphKey:
    """Everything a cached graph depends on; a cache with any other key is rebuilt."""
    weights: str
    runtime: str
    runtime_version: str
    input_shape: tuple[int, ...]  # (C, H, W); the batch dimension is dynamic
    opset: int = OPSET
    precision: str = "f32"
    export_format: int = EXPORT_FORMAT
    torch_version: str = torch.__version__

    def to_dict(self) -> dict:
        return {**asdict(self), "input_shape": list(self.input_shape)}


class _Pooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, pool: Callable[[Any], torch.Tensor]) -> None:
        super().__init__()
        self.model, self.pool = model, pool

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pool(self.model(pixel_values=pixel_values)).float()


def export_onnx(model: torch.nn.Module, pool: Callable[[Any], torch.Tensor], example: torch.Tensor,
                path: Path) -> None:
    """Write model + pooling as ONNX (input "pixel_values", output "embedding", dynamic batch).

    Transformers are exported with eager attention (SDPA fails in the dynamo exporter and
    gains nothing in a graph runtime); the model's own setting is restored afterwards.
    """
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    switch = attn not in (None, "eager") and hasattr(model, "set_attn_implementation")
    was_training = model.training
    try:
        if switch:
            model.set_attn_implementation("eager")
        model.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about Python branches on shapes
            torch.onnx.export(_Pooled(model, pool), (example.float().contiguous(),), str(path),
                              input_names=["pixel_values"], output_names=["embedding"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
    except Exception as exc:
        raise GraphError(f"cannot export {type(model).__name__} to ONNX: {exc}") from exc
    finally:
        if switch:
            model.set_attn_implementation(attn)
        model.train(was_training)


class _OrtRunner:
    def __init__(self, path: Path, threads: int | None, compiled_cache: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:  # thread-safe
        return self.session.run(None, {"pixel_values": pixels})[0]


_ov_core = None
_ov_lock = threading.Lock()


class _OpenVinoRunner:
    """compiled_cache: a folder for OpenVINO's own cache of the compiled model (compiling
    BEiT-base takes 2.5-5 s on 2 cores, loading it from there 0.4 s); one folder per graph file."""

    def __init__(self, path: Path, threads: int | None, compiled_cache: Path | None = None) -> None:
        global _ov_core
        import openvino as ov

        with _ov_lock:
            if _ov_core is None:
                _ov_core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32",  # never bf16 behind the user's back
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                  "INFERENCE_NUM_THREADS": str(threads or 0)}  # 0: all cores
        try:
            self.compiled = _ov_core.compile_model(
                str(path), "CPU", {**config, "CACHE_DIR": str(compiled_cache)} if compiled_cache else config)
        except Exception:
            if compiled_cache is None:
                raise
            shutil.rmtree(compiled_cache, ignore_errors=True)  # a damaged compiled cache: compile afresh
            self.compiled = _ov_core.compile_model(str(path), "CPU", config)
        precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if "f32" not in precision and "float32" not in precision:
            raise GraphError(f"OpenVINO compiled the graph in {precision}, not f32")
        self._local = threading.local()  # one infer request per calling thread

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: pixels})
        return np.array(request.get_output_tensor(0).data, copy=True)


_RUNNERS = {"onnxruntime": _OrtRunner, "openvino": _OpenVinoRunner}


class GraphEmbedder(torch.nn.Module):
    """A backbone run by a graph runtime: pixel_values (B,3,H,W) -> (B, D) float32 embeddings.

    Same interface as `speed.FastEmbedder` (`model`, `settings`, `forward`). Inputs of
    another spatial size than the exported one run eagerly on `model`.
    """

    def __init__(self, model: torch.nn.Module, settings: Any, runner: Callable[[np.ndarray], np.ndarray],
                 key: GraphKey, path: Path | None, pool: Callable[[Any], torch.Tensor],
                 cold_start_s: float = 0.0, cached: bool = False) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.runner = runner
        self.key = key
        self.path = path
        self.pool = pool
        self.cold_start_s = cold_start_s  # seconds to export or read, compile and check the graph
        self.cached = cached  # read from the cache (True) or exported now

    @property
    def runtime(self) -> str:
        return self.key.runtime

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if tuple(pixel_values.shape[1:]) != self.key.input_shape:
            with torch.inference_mode():
                return self.pool(self.model(pixel_values=pixel_values.to(next(self.model.parameters()).device))).float()
        pixels = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.runner(pixels))


def _probe(example: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    shape = (PROBE_BATCH, *example.shape[1:])
    # Normalised-pixel statistics: roughly unit variance around zero, with structure per channel.
    return torch.randn(shape, generator=generator) * 0.8 + torch.linspace(-0.5, 0.5, shape[1]).view(1, -1, 1, 1)


def _eager(model: torch.nn.Module, pool: Callable[[Any], torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return pool(model(pixel_values=pixels.to(next(model.parameters()).device))).float().cpu()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return -1.0
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).min())


def _read_meta(meta: Path) -> dict | None:
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cache_usable(graph: Path, meta: Path, key: GraphKey) -> torch.Tensor | None:
    """The eager embeddings of the probe batch recorded with the cached graph, when graph and
    meta hold exactly `key`'s graph; None (with the reason logged) when they do not."""
    if not graph.is_file() and not meta.is_file():
        return None
    recorded = _read_meta(meta)
    if recorded is None or not graph.is_file():
        log.warning("graph cache %s is incomplete or unreadable; rebuilding it", graph)
        return None
    if recorded.get("key") != key.to_dict():
        log.info("graph cache %s was built for other weights or settings; rebuilding it", graph)
        return None
    try:
        # Its size here, its content by the probe check after loading (hashing a 350 MB graph
        # would take longer than loading it).
        if graph.stat().st_size != recorded.get("size"):
            log.warning("graph cache %s does not match its key file (changed or damaged); rebuilding it", graph)
            return None
        reference = torch.tensor(recorded["probe"], dtype=torch.float32)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError):
        log.warning("graph cache %s has a damaged key file; rebuilding it", graph)
        return None
    if reference.ndim != 2 or len(reference) != PROBE_BATCH:
        log.warning("graph cache %s has a damaged key file; rebuilding it", graph)
        return None
    return reference


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK)
    except OSError:
        return False


def _export_to_cache(model, pool, example: torch.Tensor, graph: Path, meta: Path, key: GraphKey,
                     reference: torch.Tensor) -> None:
    """Export the graph and write its key file."""
    with atomic_path(graph) as tmp:
        export_onnx(model, pool, example, Path(tmp))
    with atomic_path(meta) as tmp:
        Path(tmp).write_text(json.dumps({"key": key.to_dict(), "size": graph.stat().st_size,
                                         "probe": reference.tolist()}))


def _compiled_cache(folder: Path | None, runtime: str, graph: Path) -> Path | None:
    """The runtime's own compiled-model cache for this very graph file (OpenVINO only),
    removing those of earlier files. OpenVINO keys its cache by the file's path, not its
    content, so the folder is named after the file's size, inode and modification time: a
    graph written or replaced since never meets an old compiled model."""
    if folder is None or runtime != "openvino":
        return None
    stat = graph.stat()
    stamp = hashlib.sha256(f"{stat.st_size}-{stat.st_ino}-{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = folder / f"{runtime}-compiled-{stamp}"
    for old in folder.glob(f"{runtime}-compiled-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _load_runner(runtime: str, graph: Path, threads: int | None,
                 compiled_cache: Path | None = None) -> Callable[[np.ndarray], np.ndarray]:
    _graphs_loaded.set()  # from here on the runtime's threads may exist
    try:
        return _RUNNERS[runtime](graph, threads, compiled_cache)
    except GraphError:
        raise
    except Exception as exc:
        raise GraphError(f"{runtime} cannot load {graph.name}: {(str(exc).splitlines() or [''])[0]}") from exc


def build_graph_embedder(model: torch.nn.Module, settings: Any, example: torch.Tensor, *,
                         runtime: str, pool: Callable[[Any], torch.Tensor] | None = None,
                         cache_dir: str | Path | None = None, digest: str | None = None) -> GraphEmbedder:
    """Export (or read from `cache_dir`) the graph of `model`, compile it with `runtime` and
    check it against eager PyTorch on a probe batch. Raises GraphError when anything fails.

    example: an input batch of the exported spatial size (B, C, H, W).
    digest: the weights' digest (e.g. `Backbone.cache_key`), which keys the cache; without it
        the graph is exported afresh and not cached.
    settings.threads: the runtime's intra-op threads (None: all cores).
    cache_dir: where the graph is kept (None or not writable: exported afresh every time).
    The eager embeddings of the probe are recorded with a cached graph (same weights, by its
    key), so a cached graph is checked without running the eager model.
    """
    if runtime not in _RUNNERS:
        raise GraphError(f"unknown graph runtime {runtime!r}")
    pool = pool or pool_outputs
    started = time.perf_counter()
    key = GraphKey(weights=digest or "", runtime=runtime,
                   runtime_version=runtime_version(runtime),
                   input_shape=tuple(int(d) for d in example.shape[1:]))
    example = example[:1].detach().to("cpu", torch.float32)
    probe = _probe(example)
    threads = getattr(settings, "threads", None)
    folder = Path(cache_dir) if cache_dir is not None and digest else None
    if folder is not None and not _writable(folder):
        log.info("graph cache folder %s is not writable; exporting without a cache", folder)
        folder = None
    with tempfile.TemporaryDirectory(prefix="geoai-graph-") as scratch:
        base = folder if folder is not None else Path(scratch)
        graph, meta = base / f"graph-{runtime}.onnx", base / f"graph-{runtime}.json"
        reference = _cache_usable(graph, meta, key) if folder is not None else None
        runner = None
        if reference is not None:
            try:
                runner = _load_runner(runtime, graph, threads, _compiled_cache(folder, runtime, graph))
            except GraphError as exc:  # a graph the runtime cannot read: rebuild it
                log.warning("graph cache %s cannot be used (%s); rebuilding it", graph, exc)
        cached = runner is not None
        if cached:
            # Checked on one probe image: the batch dimension was checked when it was exported.
            cosine = _cosine(reference[:1], torch.from_numpy(runner(probe[:1].numpy())))
            if not cosine >= MIN_COSINE:
                log.warning("graph cache %s gives other embeddings than it recorded; rebuilding it", graph)
                runner, cached = None, False
        if runner is None:
            reference = _eager(model, pool, probe)
            _export_to_cache(model, pool, example, graph, meta, key, reference)
            runner = _load_runner(runtime, graph, threads, _compiled_cache(folder, runtime, graph))
            cosine = _cosine(reference, torch.from_numpy(runner(probe.numpy())))
    if not cosine >= MIN_COSINE:
        raise GraphError(f"the {runtime} graph's embeddings differ from eager PyTorch (cosine {cosine:.6f} "
                         f"< {MIN_COSINE})")
    seconds = time.perf_counter() - started
    log.info("%s graph of %s %s in %.2f s (probe cosine %.6f)", runtime, type(model).__name__,
             "read from the cache" if cached else "exported", seconds, cosine)
    return GraphEmbedder(model, settings, runner, key, graph if folder is not None else None, pool,
                         cold_start_s=seconds, cached=cached)
