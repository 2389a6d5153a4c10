"""Study import of hostile and malformed sources: unreadable zips, badly named folders,
zip bombs, padded images and lying sizes. Each is a one-line error or a reported problem,
never a traceback, a silent drop or an unbounded read."""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from fixtures_data import glued_bytes, jpeg_bytes
from geoai.data import DatasetError, import_study
from geoai.data.cli import main as data_cli
from geoai.data.study import ImportLimits

GOOD = ("1,45.5,15.5", "2,46.0,16.0")
CENTRAL, LOCAL = b"PK\x01\x02", b"PK\x03\x04"


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def good_members() -> dict[str, bytes]:
    return {f"{place}/glued.jpg": glued_bytes() for place in GOOD}


def patch_headers(path: Path, names: set[str] | None = None, *, method: int | None = None,
                  flags: int | None = None, size: int | None = None) -> Path:
    """Rewrite fields of the local and central headers of some entries (all by default),
    as a tool writing encryption, another compression or a false size would."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        chosen = [i for i in archive.infolist() if names is None or i.filename in names]
    for info in chosen:
        local, central = info.header_offset, _central_offset(data, info.filename)
        for base, flag_at, method_at, size_at in ((local, 6, 8, 22), (central, 8, 10, 24)):
            if flags is not None:
                struct.pack_into("<H", data, base + flag_at, struct.unpack_from("<H", data, base + flag_at)[0] | flags)
            if method is not None:
                struct.pack_into("<H", data, base + method_at, method)
            if size is not None:
                struct.pack_into("<I", data, base + size_at, size)
    path.write_bytes(bytes(data))
    return path


def _central_offset(data: bytearray, name: str) -> int:
    at = data.index(CENTRAL)
    while True:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len].decode() == name:
            return at
        at = data.index(CENTRAL, at + 46)


def run_cli(capsys, *args) -> tuple[int, str]:
    code = data_cli(["import-study", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err


# ---------------------------------------------------------------- unreadable zips

UNREADABLE = {
    "encrypted": dict(flags=0x1),
    "deflate64": dict(method=9),
    "ppmd": dict(method=98),
    "implode": dict(method=6),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_a_wholly_unreadable_zip_is_one_line(tmp_path, capsys, case):
    archive = patch_headers(write_zip(tmp_path / "s.zip", good_members()), **UNREADABLE[case])
    with pytest.raises(DatasetError) as info:
        import_study(archive, tmp_path / "out")
    assert len(info.value.problems) == 1 and "\n" not in str(info.value)
    assert ("encrypted" in str(info.value)) == (case == "encrypted")
    code, err = run_cli(capsys, archive, tmp_path / "out2")
    assert code != 0 and err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_one_unreadable_entry_skips_only_its_place(tmp_path, case):
    members = good_members() | {"3,47.0,17.0/glued.jpg": glued_bytes()}
    archive = patch_headers(write_zip(tmp_path / "s.zip", members), {"3,47.0,17.0/glued.jpg"},
                            **UNREADABLE[case])
    with pytest.raises(DatasetError):
        import_study(archive, tmp_path / "out")
    dataset = import_study(archive, tmp_path / "out", on_error="skip")
    assert sorted(dataset.frame["location_id"].unique()) == list(GOOD)
    [problem] = dataset.problems
    assert problem.file_name == "3,47.0,17.0/glued.jpg"
    assert problem.kind == ("encrypted_entry" if case == "encrypted" else "unsupported_compression")


def test_a_file_that_only_looks_like_a_zip_is_one_line(tmp_path, capsys):
    archive = write_zip(tmp_path / "s.zip", good_members())
    data = archive.read_bytes()
    archive.write_bytes(data[: data.index(CENTRAL) + 10] + data[-22:])  # cut central directory
    code, err = run_cli(capsys, archive, tmp_path / "out")
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- folder names

BAD_FOLDERS = [
    "no-commas", "1,45.5", "1,45.5,15.5,9", ",45.5,15.5", "1,nan,15.5", "1,45.5,inf",
    "1,95.0,15.5", "1,45.5,181", "1,45\u066b5,15.5", "1,\u0664\u0665,15.5", "1,0x2D,15.5",
    "1,45_5,15.5", "1,45.5.1,15.5", "1, ,15.5", "1,45,5,15,5",
]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_every_badly_named_folder_is_reported(tmp_path, as_zip):
    members = good_members()
    for i, name in enumerate(BAD_FOLDERS):
        members[f"{name}/glued.jpg"] = glued_bytes()
        if i % 3 == 0:  # some with separate views: still one problem per folder
            members[f"{name}/0.jpg"] = jpeg_bytes()
    members["stray.jpg"] = jpeg_bytes()
    members["2,46.0,16.0/thumbs/0.jpg"] = jpeg_bytes()
    members["notes.txt"] = b"hello"
    members["other.csv"] = b"a,b\n1,2\n"
    if as_zip:
        src = write_zip(tmp_path / "s.zip", members)
    else:
        src = tmp_path / "src"
        for name, data in members.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
    with pytest.raises(DatasetError) as info:
        import_study(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    dataset = import_study(src, tmp_path / "out", on_error="skip")
    assert sorted(dataset.frame["location_id"].unique()) == list(GOOD)
    reported = {p.file_name: p.kind for p in dataset.problems}
    assert {p.file_name: p.kind for p in info.value.problems} == reported
    assert {n for n, k in reported.items() if k == "bad_place_name"} == set(BAD_FOLDERS) | {
        "stray.jpg", "2,46.0,16.0/thumbs"}
    assert reported["notes.txt"] == reported["other.csv"] == "skipped_entry"
    assert len(dataset.problems) == len(BAD_FOLDERS) + 4  # one per folder or file, none twice


# ---------------------------------------------------------------- limits and bombs

def padded_jpeg(extra: int) -> bytes:
    return jpeg_bytes((24, 16), (90, 120, 80)) + bytes(extra)


@pytest.mark.parametrize("extra_mib", [5, 9])
@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED], ids=["deflated", "stored"])
def test_padded_images_are_refused_without_being_written(tmp_path, extra_mib, compression):
    members = good_members() | {f"9,40.0,10.0/{h}.jpg": padded_jpeg(extra_mib * 2**20) for h in range(3)}
    archive = write_zip(tmp_path / "s.zip", members, compression)
    dataset = import_study(archive, tmp_path / "out", on_error="skip")
    assert sorted(dataset.frame["location_id"].unique()) == list(GOOD)
    [problem] = dataset.problems
    assert problem.kind == ("zip_bomb" if compression == zipfile.ZIP_DEFLATED else "padded_image")
    assert problem.file_name == "9,40.0,10.0/glued.jpg" or "9,40.0,10.0" in problem.message
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written < 2**20  # nothing of the padding stays on disk


@pytest.mark.parametrize("limit, kind", [
    (ImportLimits(max_total_bytes=1000), "too_large"),
    (ImportLimits(max_entries=2), "too_many_entries"),
])
def test_source_over_a_limit_is_one_line(tmp_path, limit, kind):
    archive = write_zip(tmp_path / "s.zip", good_members() | {"3,47.0,17.0/glued.jpg": glued_bytes()})
    with pytest.raises(DatasetError) as info:
        import_study(archive, tmp_path / "out", limits=limit, on_error="skip")
    assert [p.kind for p in info.value.problems] == [kind] and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_entry_over_the_size_limit_is_a_problem(tmp_path):
    big = {"3,47.0,17.0/glued.jpg": glued_bytes((3000, 1000))}
    archive = write_zip(tmp_path / "s.zip", good_members() | big)
    limit = ImportLimits(max_entry_bytes=max(len(d) for d in good_members().values()) + 1)
    dataset = import_study(archive, tmp_path / "out", limits=limit, on_error="skip")
    assert [(p.kind, p.file_name) for p in dataset.problems] == [("entry_too_large", "3,47.0,17.0/glued.jpg")]


@pytest.mark.parametrize("declared", ["larger", "smaller"])
def test_a_size_that_lies_is_a_problem(tmp_path, declared):
    data = glued_bytes()
    archive = write_zip(tmp_path / "s.zip", good_members() | {"3,47.0,17.0/glued.jpg": data},
                        zipfile.ZIP_STORED)
    size = len(data) * 3 if declared == "larger" else len(data) // 3
    patch_headers(archive, {"3,47.0,17.0/glued.jpg"}, size=size)
    dataset = import_study(archive, tmp_path / "out", on_error="skip")
    [problem] = dataset.problems
    assert problem.file_name == "3,47.0,17.0/glued.jpg"
    assert problem.kind in {"size_mismatch", "unreadable_image"}
    assert sorted(dataset.frame["location_id"].unique()) == list(GOOD)
