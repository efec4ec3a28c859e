"""The small I/O mechanisms every command shares: PNG bytes, JSON files, refusing to overwrite, safetensors headers."""

import io
import json
import struct

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.io.images import png_bytes
from conceptlab.engine.io.safetensors_header import (
    HeaderError,
    decode_metadata,
    encode_metadata,
    encoded_metadata,
    header_bytes,
)


def _chunk_names(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order (each chunk: length, type, data, CRC)."""
    names, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        names.append(data[position + 4 : position + 8])
        position += 12 + length
    return names


def _gradient(mode: str) -> Image.Image:
    image = Image.new(mode, (7, 5))
    image.putdata(
        [tuple((x * 37 + y * 11 + c * 5) % 256 for c in range(len(mode))) for y in range(5) for x in range(7)]
    )
    return image


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_png_bytes_decode_to_the_same_pixels_and_depend_on_the_pixels_only(mode):
    image = _gradient(mode)
    data = png_bytes(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    decoded = Image.open(io.BytesIO(data))
    assert (decoded.format, decoded.mode, decoded.size) == ("PNG", mode, (7, 5))
    assert list(decoded.getdata()) == list(image.getdata())  # lossless
    assert png_bytes(image) == data and png_bytes(image.copy()) == data  # the same pixels, the same bytes
    changed = image.copy()
    changed.putpixel((3, 2), (0,) * len(mode))
    assert png_bytes(changed) != data


def test_png_bytes_carry_no_timestamp_text_or_resolution_of_the_source_file():
    """An image read from a PNG with a comment and a resolution encodes like its bare pixels: no tIME, tEXt or pHYs."""
    image = _gradient("RGB")
    info = PngInfo()
    info.add_text("Comment", "made on a Tuesday")
    source = io.BytesIO()
    image.save(source, format="PNG", pnginfo=info, dpi=(300, 300))
    reread = Image.open(io.BytesIO(source.getvalue()))
    assert reread.info["Comment"] == "made on a Tuesday" and b"tEXt" in _chunk_names(source.getvalue())
    data = png_bytes(reread)
    assert data == png_bytes(image)
    assert _chunk_names(data) == [b"IHDR", b"IDAT", b"IEND"]


def test_json_files_are_indented_sorted_and_end_in_a_newline(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


def test_refusing_to_overwrite_names_the_file_the_option_and_force(tmp_path):
    taken, other, free = tmp_path / "taken.csv", tmp_path / "other.png", tmp_path / "free.csv"
    taken.write_text("x")
    other.write_text("x")
    refuse_existing([free, None], force=False, what="--csv file")
    refuse_existing([taken], force=True, what="--csv file")
    with pytest.raises(UsageError) as one:
        refuse_existing([None, taken], force=False, what="--csv file")
    assert str(one.value) == f"{taken} already exists; choose another --csv file or add --force to write over it."
    with pytest.raises(UsageError, match=r"already exists \(and 1 more\);.* write over them, or --resume the run\.$"):
        refuse_existing([taken, other], force=False, what="--out", other_way=", or --resume the run")


def test_safetensors_metadata_round_trips_through_the_header():
    metadata = encode_metadata({"token": "<t>", "negatives": [{"word": "cat", "step": 0}]})
    data = header_bytes({"__metadata__": metadata}) + b"tensor bytes"
    assert len(data[: -len(b"tensor bytes")]) % 8 == 0
    assert decode_metadata(encoded_metadata(data)) == {"token": "<t>", "negatives": [{"word": "cat", "step": 0}]}
    assert encoded_metadata(header_bytes({"x": {}})) is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10_000) + b"{}", "runs past the end"),
        (struct.pack("<Q", 4) + b"abcd", "not JSON"),
    ],
)
def test_a_damaged_safetensors_header_names_what_is_wrong(data, reason):
    with pytest.raises(HeaderError, match=reason):
        encoded_metadata(data)


def test_metadata_values_that_are_not_json_are_refused():
    with pytest.raises(HeaderError, match="not JSON"):
        decode_metadata({"kind": "not json {"})
    assert json.loads(encode_metadata({"a": {"z": 1, "y": 2}})["a"]) == {"y": 2, "z": 1}
