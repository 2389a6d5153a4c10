"""Fast inference for the image backbones without changing their answers.

`choose_settings` picks, per device and model family, the levers that measurably pay
(docs/benchmarks.md has the numbers behind each choice). By default only levers that
keep fp32 numbers are used, so that answers stay unchanged:

* `torch.compile` (inductor, frozen weights: BatchNorm folded into convs, weights
  pre-packed for oneDNN) for throughput work such as the embedding cache. Never for the
  game: the first call costs 15-100 s on a 2-core CPU.
* channels_last memory format for CNNs; SDPA attention for transformers;
  `torch.inference_mode`.
* For the game (workload "latency") on CPU, half the cores as torch threads: on shared
  cores, two threads waiting on each other make single-image inference 5-100x slower.

On CPU, fp32 inference runs through a graph runtime (OpenVINO, else ONNX Runtime; see
geoai.models.runtime and GEOAI_RUNTIME) when one is installed: about 2x (BEiT-base) to 4x
(ResNet-50) faster than eager on 2 cores, with the same fp32 answers. `optimize_for_inference` is the one
place where a backbone is wrapped for inference, whichever engine runs it.

Reduced precision is opt-in (`precision="reduced"` or GEOAI_PRECISION=reduced): bf16 on
CPUs with AVX-512 BF16 or AMX, fp16/bf16 on CUDA. It is 2-5x faster on CPU and keeps the
embeddings' cosine above 0.9999 for transformers, but moves trained heads' guesses by tens
of km and breaks MobileNetV2 (cosine 0.95); `calibrate_settings` checks a given model on
real photos. GEOAI_FORCE_FP32=1 vetoes reduced precision everywhere; GEOAI_COMPILE=0|1
overrides the compile choice.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from geoai import settings
from geoai.models.pooling import pool_outputs

log = logging.getLogger(__name__)

Family = Literal["transformer", "cnn"]
Workload = Literal["latency", "throughput"]
Precision = Literal["fp32", "reduced"]
MIN_COSINE = 0.999  # lowest embedding cosine to the fp32 path that counts as the same answer
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class SpeedError(ValueError):
    """Inference settings that cannot be applied; the message says which and why."""


@dataclass(frozen=True)
class InferenceSettings:
    """How to run a backbone for inference.

    dtype: compute precision, "float32" | "bfloat16" | "float16".
    cast_weights: store weights in `dtype` (True) or keep fp32 weights under autocast (False).
    channels_last: NHWC memory format for the model and its input (CNNs).
    attn_implementation: "sdpa" | "eager" | None (leave the model's choice).
    compile: wrap the model in torch.compile (inductor, frozen weights).
    threads: intra-op threads (torch: process-wide once applied; a graph runtime: its own),
        None keeps the default (all cores).
    runtime: "torch", or the graph runtime that runs the model ("openvino" | "onnxruntime");
        fp32 numbers either way. With a graph runtime, compile is not used.
    """

    dtype: str = "float32"
    cast_weights: bool = False
    channels_last: bool = False
    attn_implementation: str | None = None
    compile: bool = False
    threads: int | None = None
    runtime: str = "torch"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise SpeedError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if self.attn_implementation not in (None, "sdpa", "eager"):
            raise SpeedError(f"attn_implementation must be 'sdpa', 'eager' or None, "
                             f"got {self.attn_implementation!r}")
        if self.runtime not in ("torch", "openvino", "onnxruntime"):
            raise SpeedError(f"runtime must be 'torch', 'openvino' or 'onnxruntime', got {self.runtime!r}")
        if self.runtime != "torch" and self.dtype != "float32":
            raise SpeedError(f"a graph runtime ({self.runtime}) runs fp32 only, not {self.dtype}")
        if self.threads is not None and self.threads < 1:
            raise SpeedError(f"threads must be at least 1, got {self.threads}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    @property
    def tag(self) -> str:
        """Short id of the settings that change numbers (for logs and embedding-cache keys)."""
        if self.dtype == "float32":
            return "fp32"
        return f"{self.dtype}-{'weights' if self.cast_weights else 'autocast'}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 dot products (AVX-512 BF16 or AMX).

    Reads the CPU flags from /proc/cpuinfo (Linux); elsewhere falls back to torch's
    detected capability, where only "AVX512_BF16"/"AMX" levels count.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "BF16" in capability or "AMX" in capability


def _compiler_available() -> bool:
    # Inductor generates C++ on CPU; without a compiler the first call would fail.
    return shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("c++") is not None


def choose_settings(family: Family, device: str | torch.device = "cpu",
                    force_fp32: bool | None = None, *, workload: Workload = "latency",
                    precision: Precision | None = None) -> InferenceSettings:
    """The fastest settings for this family and device that keep the model's answers.

    family: "transformer" or "cnn" (a BackboneSpec's family).
    workload: "latency" (the game: one image, fast cold start, never compiles) or
        "throughput" (embedding a dataset: batches, torch.compile on CPU).
    precision: "fp32" (default; GEOAI_PRECISION overrides) keeps fp32 numbers and only uses
        levers that do not change them: SDPA, channels_last, inference_mode, compile.
        "reduced" adds bf16 on CPUs with AVX-512 BF16/AMX and fp16/bf16 on CUDA: 2-5x faster
        on CPU, embedding cosine >= 0.9999 for transformers, but trained heads' guesses move
        by tens of km (docs/benchmarks.md), so it is opt-in; check a model with
        `calibrate_settings` before relying on it.
    force_fp32: overrides `precision` with fp32; None reads GEOAI_FORCE_FP32 ("1" = on).
    runtime: for fp32 on CPU, the graph runtime GEOAI_RUNTIME picks (geoai.models.runtime:
        OpenVINO, else ONNX Runtime, when installed), else "torch"; reduced precision and CUDA
        always run in PyTorch.
    """
    if family not in ("transformer", "cnn"):
        raise SpeedError(f"family must be 'transformer' or 'cnn', got {family!r}")
    if workload not in ("latency", "throughput"):
        raise SpeedError(f"workload must be 'latency' or 'throughput', got {workload!r}")
    if precision is None:
        precision = settings.precision()
    if precision not in ("fp32", "reduced"):
        raise SpeedError(f"precision must be 'fp32' or 'reduced' (GEOAI_PRECISION), got {precision!r}")
    device = torch.device(device)
    if force_fp32 is None:
        force_fp32 = settings.force_fp32()
    is_cnn = family == "cnn"

    dtype, cast_weights = "float32", False
    if precision == "reduced" and not force_fp32:
        if device.type == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif device.type == "cpu" and cpu_supports_bf16():
            # CNNs: bf16 weights, since autocast re-casts every conv weight on every call
            # (eager: 2.2x vs 1.3x); transformers: autocast keeps LayerNorm/softmax in fp32.
            dtype, cast_weights = "bfloat16", is_cnn

    # The game never compiles: the first call takes 15-100 s on this CPU.
    compile_ = workload == "throughput" and device.type == "cpu" and _compiler_available()
    override = settings.compile_override()
    if override is not None:
        compile_ = override
    runtime = "torch"
    if dtype == "float32":
        from geoai.models.runtime import resolve_runtime

        runtime = resolve_runtime(device)
    if runtime != "torch":
        compile_ = False  # the graph runtime is the compiler; eager is only the fallback
    return InferenceSettings(dtype=dtype, cast_weights=cast_weights, channels_last=is_cnn,
                             attn_implementation=None if is_cnn else "sdpa", compile=compile_,
                             threads=_threads_for(workload, device), runtime=runtime)


def _threads_for(workload: Workload, device: torch.device) -> int | None:
    """Intra-op threads: GEOAI_THREADS if set; for the game on CPU half the cores.

    Measured on the 2-core CPU while another process used one core: batch-1 BEiT-base took
    2.4 s with 2 threads and 0.45 s with 1 (ResNet-50 2.6 s vs 0.11 s; MobileNetV2 2.1 s vs
    21 ms), because every parallel op waits for the descheduled thread. Idle, 2 threads are
    only about 1.5x faster than 1, so a hosted demo on shared cores plays safe with half.
    Throughput work keeps torch's default (all physical cores): its big ops suffer less.
    """
    try:
        chosen = settings.threads()
    except settings.SettingError as exc:
        raise SpeedError(str(exc)) from None  # every bad inference setting is a SpeedError
    if chosen is not None:
        return chosen
    if workload == "latency" and device.type == "cpu":
        return max(1, (os.cpu_count() or 1) // 2)
    return None


def fp32_settings() -> InferenceSettings:
    """The reference: plain fp32, eager, nothing changed."""
    return InferenceSettings()


def _set_attention(model: torch.nn.Module, attn_implementation: str | None) -> None:
    if attn_implementation is None or not hasattr(model, "set_attn_implementation"):
        return
    if attn_implementation == "sdpa" and not getattr(model, "_supports_sdpa", False):
        log.info("%s does not support SDPA attention; keeping %s", type(model).__name__,
                 getattr(model.config, "_attn_implementation", "its default"))
        return
    model.set_attn_implementation(attn_implementation)


class FastEmbedder(torch.nn.Module):
    """A vision model run with `InferenceSettings`: pixel_values (B,3,H,W) -> (B, D) float32.

    The pooled embedding is the same as `Backbone.forward` gives (pooler_output, or the
    mean of the last hidden state), always returned as float32 on the model's device.
    """

    def __init__(self, model: torch.nn.Module, settings: InferenceSettings,
                 pool: Callable[[Any], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.pool = pool or pool_outputs
        self._compiled: Callable[[torch.Tensor], Any] | None = None
        if settings.compile:
            self._compiled = torch.compile(self._run, dynamic=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _autocast(self) -> contextlib.AbstractContextManager:
        s = self.settings
        if s.dtype == "float32" or s.cast_weights:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=s.torch_dtype)

    def _run(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pool(self.model(pixel_values=pixel_values))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        s = self.settings
        pixel_values = pixel_values.to(self.device, non_blocking=True)
        if s.cast_weights:
            pixel_values = pixel_values.to(s.torch_dtype)
        if s.channels_last and pixel_values.ndim == 4:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            if self._compiled is not None:
                try:
                    return self._compiled(pixel_values).float()
                except Exception as exc:  # inductor missing a toolchain etc.: stay correct
                    log.warning("torch.compile failed (%s); falling back to eager", exc)
                    self._compiled = None
            return self._run(pixel_values).float()


def optimize_for_inference(model: torch.nn.Module, settings: InferenceSettings,
                           pool: Callable[[Any], torch.Tensor] | None = None, *,
                           example: torch.Tensor | None = None, graph_cache: str | Path | None = None,
                           digest: str | None = None) -> torch.nn.Module:
    """Apply `settings` to a `transformers` vision model and wrap it for inference.

    The model is changed in place (eval mode, attention implementation, memory format,
    and with cast_weights its parameters become `settings.dtype`), so keep an fp32 copy
    (or use force_fp32) when the same model is to be trained. Returns a module whose
    forward(pixel_values) gives (B, D) float32 pooled embeddings: a `runtime.GraphEmbedder`
    when settings.runtime names a graph runtime, else a `FastEmbedder`.

    For a graph runtime: example is one input batch of the size to export (required; without
    it the model runs in PyTorch), graph_cache the folder keeping the exported graph (None:
    export every time), digest the weights' digest keying that cache (None: hashed here). A
    graph that cannot be built or that changes the embeddings falls back to PyTorch with a
    warning.
    """
    if not isinstance(model, torch.nn.Module):
        raise SpeedError(f"optimize_for_inference needs a torch model, got {type(model).__name__}")
    if settings.runtime != "torch" and example is None:
        log.info("no example input to export %s with; running it in PyTorch", type(model).__name__)
        settings = replace(settings, runtime="torch")
    if settings.threads is not None and settings.runtime == "torch":
        torch.set_num_threads(settings.threads)
    model.eval()
    _set_attention(model, settings.attn_implementation)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if settings.cast_weights:
        model.to(settings.torch_dtype)
    if settings.compile:
        # Frozen weights let inductor fold BatchNorm into convs and pre-pack weights for oneDNN.
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    if settings.runtime != "torch":
        from geoai.models.runtime import GraphError, build_graph_embedder

        try:
            return build_graph_embedder(model, settings, example, runtime=settings.runtime, pool=pool,
                                        cache_dir=graph_cache, digest=digest)
        except Exception as exc:  # a runtime that fails in any way must not stop inference
            reason = str(exc) if isinstance(exc, GraphError) else f"graph runtime failed ({type(exc).__name__}: {exc})"
            log.warning("%s; running %s in PyTorch instead", (reason.splitlines() or [""])[0], type(model).__name__)
            settings = replace(settings, runtime="torch", compile=False)
            if settings.threads is not None:
                torch.set_num_threads(settings.threads)
    return FastEmbedder(model, settings, pool)


def embedding_cosine(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Lowest per-row cosine similarity between two (B, D) embedding batches."""
    if reference.shape != candidate.shape:
        raise SpeedError(f"embeddings differ in shape: {tuple(reference.shape)} vs "
                         f"{tuple(candidate.shape)}")
    cos = torch.nn.functional.cosine_similarity(reference.double(), candidate.double(), dim=1)
    return float(cos.min())


def verify_settings(model: torch.nn.Module, settings: InferenceSettings, pixel_values: torch.Tensor,
                    pool: Callable[[Any], torch.Tensor] | None = None) -> float:
    """Lowest cosine between fp32 embeddings and `settings`' embeddings of `pixel_values`.

    Works on a copy, so `model` is left as it was. Compilation and threads are skipped: they
    change the speed, not the numbers. Use real photos: random noise is no evidence.
    """
    import copy

    reference = FastEmbedder(model.eval(), fp32_settings(), pool)(pixel_values)
    # Threads and compilation change speed, not numbers: leave the process's threads alone.
    candidate = optimize_for_inference(copy.deepcopy(model),
                                       replace(settings, compile=False, threads=None), pool,
                                       example=pixel_values[:1])
    return embedding_cosine(reference, candidate(pixel_values))


def calibrate_settings(model: torch.nn.Module, family: Family, pixel_values: torch.Tensor,
                       device: str | torch.device = "cpu", *, workload: Workload = "latency",
                       min_cosine: float = MIN_COSINE, allow_reduced: bool = True,
                       pool: Callable[[Any], torch.Tensor] | None = None,
                       ) -> tuple[InferenceSettings, float]:
    """The fastest settings whose embeddings of `pixel_values` keep `min_cosine` with fp32.

    Tries, in order of measured speed: the family's reduced-precision settings (CNNs: bf16
    weights, transformers: bf16 autocast), the other reduced variant, then fp32 (always
    accepted), each with the family's layout/attention/compile levers. Returns the settings
    and the cosine they reached. Meant to run once per model (e.g. when a bundle is built)
    on a few real photos; the result can be stored with `InferenceSettings.to_dict()`.
    """
    base = choose_settings(family, device, force_fp32=True, workload=workload)
    reduced = choose_settings(family, device, workload=workload, precision="reduced")
    candidates = []
    if allow_reduced and reduced.dtype != "float32":
        # The family's faster variant first (CNNs: bf16 weights; transformers: autocast).
        candidates = [reduced, replace(reduced, cast_weights=not reduced.cast_weights)]
    for settings in candidates:
        cosine = verify_settings(model, settings, pixel_values, pool)
        if cosine >= min_cosine:
            return settings, cosine
        log.info("%s keeps a cosine of only %.5f with fp32; trying the next", settings.tag, cosine)
    return base, 1.0
