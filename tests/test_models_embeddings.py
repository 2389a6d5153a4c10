"""The embedding cache and multi-view fusion."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from geoai.data import load_image_folder
from geoai.models import EmbeddingError, compute_embeddings, fuse_views, load_backbone
from tiny_models import make_tiny_beit, write_colour_coded_folder, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)


pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    return {"beit": load_backbone(str(make_tiny_beit(root / "beit")), device="cpu"),
            "other": load_backbone(str(make_tiny_beit(root / "beit2", seed=7)), device="cpu"),
            "folder": write_colour_coded_folder(root / "data", n_places=12, views=2)}


class CountingForward:
    """Wraps Backbone.infer (what the embedding cache runs) and counts the images it embeds."""

    def __init__(self, backbone, monkeypatch):
        self.images = 0
        original = backbone.infer

        def counted(pixel_values):
            self.images += len(pixel_values)
            return original(pixel_values)

        monkeypatch.setattr(backbone, "infer", counted)


def _embed(backbone, dataset, cache_dir, **kwargs):
    return compute_embeddings(backbone, dataset, cache_dir, batch_size=8, num_workers=0, progress=False, **kwargs)


def test_second_call_reads_the_cache(tiny, tmp_path, monkeypatch):
    dataset = load_image_folder(tiny["folder"])
    counter = CountingForward(tiny["beit"], monkeypatch)
    first = _embed(tiny["beit"], dataset, tmp_path)
    assert counter.images == len(dataset) == 24 and first.shape == (24, 32)
    second = _embed(tiny["beit"], dataset, tmp_path)
    assert counter.images == 24  # nothing recomputed
    np.testing.assert_array_equal(first, second)
    # The rows are the images' own embeddings, in dataset order.
    from geoai.data import open_image
    direct = tiny["beit"].embed([open_image(p) for p in dataset.frame["path"][:3]])
    np.testing.assert_allclose(first[:3], direct, rtol=1e-5, atol=1e-6)


def test_growing_dataset_embeds_only_the_new_images(tiny, tmp_path, monkeypatch):
    folder = shutil.copytree(tiny["folder"], tmp_path / "data")
    metadata = pd.read_csv(folder / "metadata.csv")
    metadata.iloc[:16].to_csv(folder / "metadata.csv", index=False)
    small = load_image_folder(folder)
    before = _embed(tiny["beit"], small, tmp_path / "cache")

    metadata.to_csv(folder / "metadata.csv", index=False)
    grown = load_image_folder(folder)
    counter = CountingForward(tiny["beit"], monkeypatch)
    after = _embed(tiny["beit"], grown, tmp_path / "cache")
    assert counter.images == 8
    index = {name: i for i, name in enumerate(grown.frame["file_name"])}
    rows = [index[name] for name in small.frame["file_name"]]
    np.testing.assert_array_equal(after[rows], before)


def test_another_backbone_does_not_reuse_the_cache(tiny, tmp_path, monkeypatch):
    dataset = load_image_folder(tiny["folder"])
    first = _embed(tiny["beit"], dataset, tmp_path)
    counter = CountingForward(tiny["other"], monkeypatch)
    other = _embed(tiny["other"], dataset, tmp_path)
    assert counter.images == len(dataset)
    assert np.abs(first - other).max() > 1e-3


def test_changed_image_content_is_recomputed(tiny, tmp_path, monkeypatch):
    folder = shutil.copytree(tiny["folder"], tmp_path / "data")
    _embed(tiny["beit"], load_image_folder(folder), tmp_path / "cache")
    name = pd.read_csv(folder / "metadata.csv")["file_name"][5]
    shutil.copy(folder / pd.read_csv(folder / "metadata.csv")["file_name"][20], folder / name)
    counter = CountingForward(tiny["beit"], monkeypatch)
    _embed(tiny["beit"], load_image_folder(folder), tmp_path / "cache")
    assert counter.images == 0  # the new content of row 5 is the (cached) content of row 20
    with open(folder / name, "ab") as fh:
        fh.write(b"\0")  # now different bytes again
    _embed(tiny["beit"], load_image_folder(folder), tmp_path / "cache")
    assert counter.images == 1


def test_damaged_cache_file_is_recomputed_with_a_warning(tiny, tmp_path, monkeypatch):
    dataset = load_image_folder(tiny["folder"])
    first = _embed(tiny["beit"], dataset, tmp_path)
    (part,) = list(tmp_path.glob("*/part-*.safetensors"))
    part.write_bytes(b"garbage")
    counter = CountingForward(tiny["beit"], monkeypatch)
    with pytest.warns(UserWarning, match="damaged embedding cache"):
        again = _embed(tiny["beit"], dataset, tmp_path)
    assert counter.images == len(dataset)
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)


def test_worker_processes_give_the_same_embeddings(tiny):
    dataset = load_image_folder(tiny["folder"]).subset("train")
    serial = compute_embeddings(tiny["beit"], dataset, None, batch_size=4, num_workers=0, progress=False)
    parallel = compute_embeddings(tiny["beit"], dataset, None, batch_size=4, num_workers=2, progress=False)
    np.testing.assert_allclose(parallel, serial, rtol=1e-5, atol=1e-6)


def test_unreadable_image_names_the_file(tiny, tmp_path):
    folder = shutil.copytree(tiny["folder"], tmp_path / "data")
    dataset = load_image_folder(folder)
    bad = dataset.frame["path"][3]
    with open(bad, "r+b") as fh:
        fh.truncate(200)  # the header still reads, the pixels do not
    with pytest.raises(EmbeddingError, match=r"place001_v1\.jpg"):
        _embed(tiny["beit"], dataset, None)


def test_fuse_views_means_each_place():
    emb = np.array([[1, 0], [3, 0], [0, 2], [5, 5], [0, 4]], dtype=np.float32)
    fused, first = fuse_views(emb, ["a", "a", "b", "c", "b"])
    np.testing.assert_array_equal(fused, [[2, 0], [0, 3], [5, 5]])
    np.testing.assert_array_equal(first, [0, 2, 3])
    with pytest.raises(ValueError, match="2 group keys for 5 embeddings"):
        fuse_views(emb, ["a", "b"])
