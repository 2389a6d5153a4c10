"""load_image_folder on broken folders: every problem is reported, none silently dropped."""
from __future__ import annotations

import pytest

from fixtures_data import (make_good_folder, write_bomb_png, write_jpeg, write_metadata,
                           write_truncated_jpeg)
from geoai.data import DatasetError, load_image_folder


def broken_folder(root):
    """Rows 1-2 good; rows 3-13 each broken in one way (row number = list position + 1)."""
    write_jpeg(root / "images/good1.jpg")
    write_jpeg(root / "images/good2.jpg", seed=2)
    write_jpeg(root / "images/fine.jpg", seed=3)
    (root / "images/corrupt.jpg").write_bytes(b"\x00\x01garbage" * 50)
    write_truncated_jpeg(root / "images/cut.jpg")
    (root / "images/text.jpg").write_text("this is not a picture")
    write_bomb_png(root / "images/bomb.png")
    (tmp_outside := root.parent / "outside.jpg").write_bytes(b"")
    rows = [
        ["images/good1.jpg", "45.1", "15.2", "a", "0", "HR"],      # 1
        ["images/good2.jpg", "-33.9", "151.2", "b", "", "AU"],     # 2
        ["images/fine.jpg", "abc", "15", "c", "", ""],             # 3 non-numeric lat
        ["images/fine.jpg", "45", "15", "c", "", ""],              # 4 duplicate of row 3
        ["images/missing.jpg", "45", "15", "d", "", ""],           # 5 missing file
        ["images/corrupt.jpg", "45", "15", "e", "", ""],           # 6 not an image
        ["images/cut.jpg", "45", "15", "f", "", ""],               # 7 truncated (full check)
        ["images/text.jpg", "45", "15", "g", "", ""],              # 8 text file
        ["images/bomb.png", "45", "15", "h", "", ""],              # 9 decompression bomb
        ["../outside.jpg", "45", "15", "i", "", ""],               # 10 escapes the folder
        [str(tmp_outside), "45", "15", "j", "", ""],               # 11 absolute path
        ["images/good1.jpg", "nan", "200", "k", "", ""],           # 12 NaN + out of range, dup
        ["images/good2.jpg", "91", "15", "", "", ""],              # 13 lat range, empty group, dup
    ]
    write_metadata(root, rows)
    return root


EXPECTED = {  # row -> kinds found there
    3: {"bad_coordinate"}, 4: {"duplicate_path"}, 5: {"missing_file"}, 6: {"not_an_image"},
    7: {"truncated_image"}, 8: {"not_an_image"}, 9: {"image_too_large"}, 10: {"unsafe_path"},
    11: {"unsafe_path"}, 12: {"bad_coordinate", "duplicate_path"},
    13: {"bad_coordinate", "empty_group_key", "duplicate_path"},
}


def test_raise_lists_every_bad_row(tmp_path):
    root = broken_folder(tmp_path / "ds")
    with pytest.raises(DatasetError) as info:
        load_image_folder(root, check_images="full")
    found: dict[int, set] = {}
    for p in info.value.problems:
        found.setdefault(p.row, set()).add(p.kind)
    assert found == EXPECTED
    message = str(info.value)
    for row in EXPECTED:
        assert f"row {row} " in message
    for words in ("'abc' is not a number", "latitude 'nan' is not a number", "longitude 200 is outside",
                  "same file as row 3", "truncated", "leaves the dataset folder", "location_id is empty"):
        assert words in message


def test_skip_keeps_good_rows_and_reports_the_rest(tmp_path):
    root = broken_folder(tmp_path / "ds")
    dataset = load_image_folder(root, on_error="skip", check_images="full")
    assert dataset.frame["file_name"].tolist() == ["images/good1.jpg", "images/good2.jpg"]
    assert {p.row for p in dataset.problems} == set(EXPECTED)
    assert all(p.file_name for p in dataset.problems)
    assert dataset.summary()["problems"]["bad_coordinate"] == 4


def test_header_check_misses_only_truncation(tmp_path):
    root = broken_folder(tmp_path / "ds")
    dataset = load_image_folder(root, on_error="skip", check_images="header")
    assert "images/cut.jpg" in set(dataset.frame["file_name"])
    assert {p.row for p in dataset.problems} == set(EXPECTED) - {7}


def test_no_image_check_still_finds_missing_files(tmp_path):
    root = broken_folder(tmp_path / "ds")
    dataset = load_image_folder(root, on_error="skip", check_images="none")
    assert 5 in {p.row for p in dataset.problems}
    assert "images/bomb.png" in set(dataset.frame["file_name"])


def test_low_pixel_limit_rejects_normal_images(tmp_path):
    root = make_good_folder(tmp_path / "ds", places=2, views=1)
    with pytest.raises(DatasetError, match="image_too_large|more than the limit"):
        load_image_folder(root, max_image_pixels=100)


def test_missing_required_column_names_missing_and_found(tmp_path):
    root = tmp_path / "ds"
    write_metadata(root, [["a.jpg", "1", "2"]], header=["file_name", "latitude", "longitude"])
    for mode in ("raise", "skip"):
        with pytest.raises(DatasetError) as info:
            load_image_folder(root, on_error=mode)
        message = str(info.value)
        assert "lat, lon missing" in message and "found columns: file_name, latitude, longitude" in message
        assert info.value.problems[0].kind == "missing_column"


@pytest.mark.parametrize("content, kind", [("", "empty_metadata"),
                                           ("file_name,lat,lon\n", "empty_metadata"),
                                           ('file_name,lat,lon\n"a.jpg,1,2\n', "bad_csv")])
def test_empty_or_broken_csv_always_raises(tmp_path, content, kind):
    (tmp_path / "metadata.csv").write_text(content)
    with pytest.raises(DatasetError) as info:
        load_image_folder(tmp_path, on_error="skip")
    assert info.value.problems[0].kind == kind


def test_missing_metadata_and_missing_folder_raise(tmp_path):
    with pytest.raises(DatasetError, match="no metadata.csv"):
        load_image_folder(tmp_path, on_error="skip")
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    root = tmp_path / "ds"
    write_jpeg(tmp_path / "secret.jpg")
    (root / "images").mkdir(parents=True)
    (root / "images/link.jpg").symlink_to(tmp_path / "secret.jpg")
    write_metadata(root, [["images/link.jpg", "1", "2", "x", "", ""]])
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        load_image_folder(root)


def test_bad_options_are_refused(tmp_path):
    root = make_good_folder(tmp_path / "ds")
    with pytest.raises(ValueError, match="on_error"):
        load_image_folder(root, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check_images"):
        load_image_folder(root, check_images="deep")  # type: ignore[arg-type]
