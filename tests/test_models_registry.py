"""The head registry: every head type is declared once, and nothing else names head types."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from geoai.geocells import KINDS as CELL_KINDS
from geoai.models import HeadError, build_head, default_heads, head_from_config, head_names, head_spec, register_head
from train.cli import main

REPO = Path(__file__).resolve().parents[1]
# Where head types are declared; geoai/bench/insight.py builds one geocell head on purpose.
DECLARING = {"geoai/models/heads.py", "geoai/models/baselines.py", "geoai/bench/insight.py"}


def test_unknown_head_type_is_a_clear_error_listing_the_known_ones():
    for ask in (lambda: head_spec("linear-foo"), lambda: build_head("linear-foo", 4, train_latlon=[[45.0, 15.0]]),
                lambda: head_from_config({"type": "linear-foo", "embed_dim": 4})):
        with pytest.raises(HeadError, match="unknown head type 'linear-foo'") as info:
            ask()
        assert all(name in str(info.value) for name in head_names())


def test_unknown_head_on_the_command_line_lists_the_known_heads(tmp_path, capsys):
    status = main(["--data", str(tmp_path), "--heads", "geocell,linear-foo", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status != 0
    assert "linear-foo" in err and all(name in err for name in head_names())


def test_declarations_answer_what_the_run_needs_to_know():
    assert head_names(baseline=True) == ("medoid", "nearest-neighbour")
    assert default_heads() == ["linear-mse", "linear-eqrect", "grid", "linear-haversine", "geocell",
                               "medoid", "nearest-neighbour"]
    assert head_spec("grid").cells == "grid" and head_spec("geocell").cells == "quadtree"
    assert head_spec("linear-mse").cells is None
    assert not head_spec("medoid").publishable and not head_spec("medoid").uses_images
    assert head_spec("nearest-neighbour").publishable and head_spec("nearest-neighbour").baseline
    assert head_spec("geocell").refinable and not head_spec("grid").refinable
    assert all(head_spec(name).label and head_spec(name).loss_label for name in head_names())


def test_a_type_cannot_be_declared_twice():
    with pytest.raises(ValueError, match="registered twice"):
        register_head("grid", rebuild=dict, label="x", loss_label="x")(lambda *a, **k: None)
    assert head_spec("grid").label == "Grid classifier + MLP"  # the first declaration stands


def test_cells_for_a_head_without_cells_are_refused():
    latlon = np.array([[45.0, 15.0], [46.0, 16.0]])
    with pytest.raises(HeadError, match="linear-mse head has no cells"):
        build_head("linear-mse", 4, train_latlon=latlon, cells=object())


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module, except the names it exports in __all__."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported = {id(n) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                for n in ast.walk(node.value)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exported]


def test_no_code_outside_the_declarations_names_a_head_type():
    names = set(head_names()) - set(CELL_KINDS)  # "grid" also names a kind of cells
    found = []
    for folder in ("geoai", "train", "app", "db"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative in DECLARING:
                continue
            found += [f"{relative}:{line} {value!r}" for line, value in _string_constants(path) if value in names]
    assert not found, "head types named outside their declaration:\n" + "\n".join(found)
