"""The head registry: every head type and baseline is declared once, where it is defined.

A head module declares each type with `@register_head(...)` on its factory, in the way of
timm's `register_model`. Everything else (training, reports, publishing, bundles) asks the
registry how to build a head, rebuild it from a saved config, label it, whether it needs
cells, whether it is a baseline and whether it may be published, and never names head types.

Importing `geoai.models` registers the built-in heads (geoai.models.heads and
geoai.models.baselines). This module imports neither, so they can both import it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from geoai.geocells import GeocellError


class HeadError(ValueError):
    """A head cannot be built, loaded or applied to the given input; the message says why."""


@dataclass(frozen=True)
class HeadSpec:
    """What the rest of the code may know about one head type.

    factory(embed_dim, *, train_latlon, **options) -> a fitted baseline or a fresh head; options
        are `cells` for heads with cells, `train_embeddings` for baselines, hyper-parameters.
    rebuild(config) -> the module a saved config describes, weights not loaded (it must also
        work on the meta device, so bundles are checked before anything is allocated).
    label, loss_label: the results table's "Head" and "Loss" columns.
    cells: what a classifier head classifies into: "grid" (the dataset's grid squares, which
        must then be given) or "quadtree" (geocells of the training places); None: no cells.
    baseline: fitted in one pass from the training set, nothing to train.
    uses_images: False for a baseline that ignores the image (one row per run, not per backbone).
    publishable: may be copied into the game's models (a player), not only a yardstick.
    refinable: guesses can be refined inside cells afterwards (geoai.models.refinement); a
        run does it unless the head's settings say {"refine": false}.
    default: trained by a run that names no heads.
    short_label: the name in compact tables (default: the type name).
    """

    name: str
    factory: Callable[..., Any]
    rebuild: Callable[[dict], Any]
    label: str
    loss_label: str
    cells: Literal["grid", "quadtree"] | None = None
    baseline: bool = False
    uses_images: bool = True
    publishable: bool = True
    refinable: bool = False
    default: bool = True
    short_label: str = ""

    @property
    def short(self) -> str:
        return self.short_label or self.name


_SPECS: dict[str, HeadSpec] = {}


def register_head(name: str, *, rebuild: Callable[[dict], Any], label: str, loss_label: str,
                  **flags: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator declaring the factory of head type `name` (flags: see HeadSpec)."""
    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _SPECS:
            raise ValueError(f"head type {name!r} is registered twice")
        _SPECS[name] = HeadSpec(name, factory, rebuild, label, loss_label, **flags)
        return factory
    return decorator


def head_spec(name: Any) -> HeadSpec:
    """The declaration of head type `name`, or HeadError listing the known types."""
    spec = _SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise HeadError(f"unknown head type {name!r:.80}; choose from {', '.join(_SPECS)}")
    return spec


def head_names(*, baseline: bool | None = None) -> tuple[str, ...]:
    """Registered head types in declaration order; only baselines or only trained heads if asked."""
    return tuple(n for n, s in _SPECS.items() if baseline is None or s.baseline == baseline)


def default_heads() -> list[str]:
    """The heads a run trains when it names none: every default head, trained heads first."""
    specs = [s for s in _SPECS.values() if s.default]
    return [s.name for s in specs if not s.baseline] + [s.name for s in specs if s.baseline]


def build_head(head_type: str, embed_dim: int, *, train_latlon: Any, cells: Any = None, **options: Any) -> Any:
    """A freshly initialised head, or a fitted baseline, of `head_type` for `embed_dim`-dimensional
    embeddings.

    train_latlon: (N, 2) training coordinates, for standardisation and distance scales.
    cells: the grid squares (grid head, required) or geocells (default: quadtree cells of
        train_latlon with cell_min_samples/cell_max_samples) of heads with cells.
    options: hyper-parameters of the head, or train_embeddings of a baseline. Unknown
        hyper-parameters raise HeadError rather than being ignored.
    """
    spec = head_spec(head_type)
    if cells is not None:
        if spec.cells is None:
            raise HeadError(f"the {head_type} head has no cells, but cells were given")
        options["cells"] = cells
    with _named_errors(spec.name):
        return spec.factory(embed_dim, train_latlon=train_latlon, **options)


def head_from_config(config: Any) -> Any:
    """Rebuild a head (or baseline) from its `config` (weights are loaded separately)."""
    if not isinstance(config, dict) or "type" not in config:
        raise HeadError(f"a head config must be a dict with a 'type', got {config!r:.200}")
    spec = head_spec(config["type"])
    with _named_errors(spec.name):
        return spec.rebuild(config)


@contextmanager
def _named_errors(head_type: str) -> Iterator[None]:
    """Turn what a bad config or setting raises into a HeadError naming the head type."""
    try:
        yield
    except HeadError:
        raise
    except KeyError as exc:
        raise HeadError(f"the {head_type} head config lacks the entry {exc}") from exc
    except GeocellError as exc:
        raise HeadError(f"the {head_type} head config has invalid cells: {exc}") from exc
    except (TypeError, ValueError) as exc:  # e.g. "tau_km": "big"
        raise HeadError(f"the {head_type} head config has an invalid value: {exc}") from exc
