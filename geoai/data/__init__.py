"""Dataset layer: load, validate and split geotagged image folders; import the study's data.

    >>> from geoai.data import load_image_folder
    >>> dataset = load_image_folder("/data/croatia-streetview")
    >>> dataset.subset("test").coords.shape
    (72, 2)

Command line: `python -m geoai.data check DIR` and `python -m geoai.data import-study SRC OUT`.
"""
from geoai.data.dataset import GeoDataset
from geoai.data.errors import DatasetError, ImageError, Problem
from geoai.data.folder import load_image_folder
from geoai.data.images import check_image, open_image
from geoai.data.splits import assign_splits
from geoai.data.study import import_study, read_study_annotations

__all__ = [
    "DatasetError", "GeoDataset", "ImageError", "Problem", "assign_splits", "check_image",
    "import_study", "load_image_folder", "open_image", "read_study_annotations",
]
