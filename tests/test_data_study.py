"""Study importer against the real annotation file, with generated glued images."""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from fixtures_data import (THIRD_COLOURS, build_study_folder, glued_bytes, jpeg_bytes,
                           mean_colour, zip_folder)
from geoai.data import DatasetError, import_study, load_image_folder, read_study_annotations

ANNOTATIONS = "seed-europe-locations/annotations_glued.csv"


@pytest.fixture(scope="module")
def real_annotations(shared_data) -> pd.DataFrame:
    return read_study_annotations(shared_data / ANNOTATIONS)


@pytest.fixture
def sample(real_annotations, tmp_path):
    """30 real annotation rows (3 squares x 10 places), saved as a CSV, glued images generated."""
    squares = sorted(real_annotations["square_id"].unique(), key=int)[:3]
    rows = real_annotations[real_annotations["square_id"].isin(squares)].groupby("square_id").head(10)
    csv = tmp_path / "annotations.csv"
    rows[["path", "square_id", "lat", "lon"]].to_csv(csv, index=False)
    source = build_study_folder(tmp_path / "study", rows["path"])
    return rows.reset_index(drop=True), csv, source


def test_whole_real_annotation_file_is_valid(real_annotations):
    assert len(real_annotations) == 17_600
    assert real_annotations["square_id"].nunique() == 88
    assert real_annotations["square_id"].value_counts().eq(200).all()
    assert real_annotations["place"].is_unique
    assert real_annotations["lat"].between(35, 60).all() and real_annotations["lon"].between(-10, 30).all()
    assert real_annotations.attrs["problems"] == []


def check_imported(dataset, rows: pd.DataFrame) -> None:
    frame = dataset.frame
    assert len(frame) == 3 * len(rows) and frame["location_id"].nunique() == len(rows)
    assert frame.groupby("location_id")["split"].nunique().max() == 1
    assert all(sorted(h) == ["0", "1", "2"] for _, h in frame.groupby("location_id")["heading"])
    places = frame.drop_duplicates("location_id").set_index("location_id")
    expected = rows.set_index("place")
    assert (places.loc[expected.index, "lat"].to_numpy() == expected["lat"].to_numpy()).all()
    assert (places.loc[expected.index, "lon"].to_numpy() == expected["lon"].to_numpy()).all()
    assert (places.loc[expected.index, "square_id"] == expected["square_id"]).all()
    assert set(frame["country"]) <= {"PT", "ES", "FR", "IT", "AD"} and (frame["country"] != "").all()
    for path, heading in zip(frame["path"], frame["heading"].astype(int), strict=True):
        colour = np.array(mean_colour(path))
        assert np.abs(colour - THIRD_COLOURS[heading]).max() < 25, (path, heading, colour)


def test_import_from_folder(sample, tmp_path):
    rows, csv, source = sample
    dataset = import_study(source, tmp_path / "out", annotations=csv)
    check_imported(dataset, rows)
    assert dataset.problems == []
    reloaded = load_image_folder(tmp_path / "out", check_images="full")
    assert reloaded.fingerprint() == dataset.fingerprint()
    assert reloaded.frame["split"].tolist() == dataset.frame["split"].tolist()


def test_import_from_zip_with_csv_inside(sample, tmp_path):
    rows, csv, source = sample
    (source / "annotations_glued.csv").write_bytes(csv.read_bytes())
    archive = zip_folder(source, tmp_path / "study.zip", prefix="seed-dataset")
    dataset = import_study(archive, tmp_path / "out")
    check_imported(dataset, rows)
    from_folder = import_study(source, tmp_path / "out2", annotations=csv)
    assert dataset.fingerprint() == from_folder.fingerprint()


def test_import_without_annotations_uses_folder_names(sample, tmp_path):
    rows, _, source = sample
    dataset = import_study(source, tmp_path / "out")
    check_imported(dataset, rows)


def test_separate_views_are_used_in_name_order(tmp_path):
    place = tmp_path / "src" / "7,45.5,15.5"
    place.mkdir(parents=True)
    for heading, colour in zip(("240", "0", "120"), (THIRD_COLOURS[2], THIRD_COLOURS[0], THIRD_COLOURS[1])):
        (place / f"{heading}.jpg").write_bytes(jpeg_bytes((32, 32), colour))
    (place / "glued.jpg").write_bytes(glued_bytes(colours=[(0, 0, 0)] * 3))  # ignored
    dataset = import_study(tmp_path / "src", tmp_path / "out")
    assert dataset.frame["heading"].tolist() == ["0", "1", "2"]
    assert dataset.frame["original_file"].tolist() == ["7,45.5,15.5/0.jpg", "7,45.5,15.5/120.jpg",
                                                       "7,45.5,15.5/240.jpg"]
    for path, colour in zip(dataset.frame["path"], THIRD_COLOURS):
        assert np.abs(np.array(mean_colour(path)) - colour).max() < 25


def bad_study(tmp_path):
    """Rows: 1 good; 2 folder/annotation mismatch; 3 lat out of range; 4 corrupt glued;
    5 no folder; plus a folder without annotation."""
    good, other, broken = "1,45.5,15.5", "1,46.0,16.0", "2,44.0,14.0"
    build_study_folder(tmp_path / "src", [f"{good}/glued.jpg", f"{other}/glued.jpg",
                                          "9,40.0,10.0/glued.jpg"])
    (tmp_path / "src" / broken).mkdir()
    (tmp_path / "src" / broken / "glued.jpg").write_bytes(b"not a jpeg at all")
    csv = tmp_path / "ann.csv"
    pd.DataFrame([[f"{good}/glued.jpg", "1", "45.5", "15.5"],
                  [f"{other}/glued.jpg", "1", "46.5", "16.0"],
                  ["3,95.0,16.0/glued.jpg", "3", "95.0", "16.0"],
                  [f"{broken}/glued.jpg", "2", "44.0", "14.0"],
                  ["4,41.0,12.0/glued.jpg", "4", "41.0", "12.0"]],
                 columns=["path", "square_id", "lat", "lon"]).to_csv(csv, index=False)
    return tmp_path / "src", csv


def test_import_raise_lists_every_problem_and_writes_nothing(tmp_path):
    src, csv = bad_study(tmp_path)
    with pytest.raises(DatasetError) as info:
        import_study(src, tmp_path / "out", annotations=csv)
    kinds = {(p.row, p.kind) for p in info.value.problems}
    assert kinds == {(2, "name_mismatch"), (3, "bad_coordinate"), (4, "not_an_image"),
                     (5, "missing_file"), (None, "unannotated_place")}
    assert "lat 46.5 but folder says 46.0" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_import_skip_keeps_good_places(tmp_path):
    src, csv = bad_study(tmp_path)
    dataset = import_study(src, tmp_path / "out", annotations=csv, on_error="skip")
    assert dataset.frame["location_id"].unique().tolist() == ["1,45.5,15.5"]
    assert sorted(p.row or 0 for p in dataset.problems) == [0, 2, 3, 4, 5]


def test_zip_member_names_never_escape_the_output(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../5,45.0,15.0/glued.jpg", glued_bytes())
        zf.writestr("/abs/6,46.0,16.0/glued.jpg", glued_bytes())
    dataset = import_study(archive, tmp_path / "deep" / "out")
    assert len(dataset) == 6
    written = {p.resolve() for p in (tmp_path / "deep").rglob("*") if p.is_file()}
    assert all(p.is_relative_to((tmp_path / "deep" / "out").resolve()) for p in written)
    assert not list(tmp_path.glob("5,*")) and not (tmp_path.parent / "5,45.0,15.0").exists()


def test_bad_annotation_csv(tmp_path):
    csv = tmp_path / "ann.csv"
    csv.write_text("path,lat,lon\nx/glued.jpg,1,2\n")
    with pytest.raises(DatasetError, match="square_id missing"):
        read_study_annotations(csv)


def test_damaged_zip_member_is_a_problem_not_a_crash(tmp_path):
    archive = tmp_path / "damaged.zip"
    data = glued_bytes()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("1,45.0,15.0/glued.jpg", data)
        zf.writestr("2,46.0,16.0/glued.jpg", data)
    raw = bytearray(archive.read_bytes())
    raw[raw.index(data[200:240]) + 5] ^= 0xFF  # first member's bytes no longer match its CRC
    archive.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="Bad CRC-32") as info:
        import_study(archive, tmp_path / "out")
    assert [(p.row, p.kind) for p in info.value.problems] == [(1, "unreadable_image")]
    assert not (tmp_path / "out").exists()
    dataset = import_study(archive, tmp_path / "out", on_error="skip")
    assert dataset.frame["location_id"].unique().tolist() == ["2,46.0,16.0"]


def test_output_that_is_a_file_is_refused(tmp_path):
    build_study_folder(tmp_path / "src", ["1,45.5,15.5/glued.jpg"])
    (tmp_path / "out.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="is a file, not a folder") as info:
        import_study(tmp_path / "src", tmp_path / "out.txt")
    assert info.value.problems[0].kind == "output_not_folder"
    assert (tmp_path / "out.txt").read_text() == "keep me"
