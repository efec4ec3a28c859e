"""The small I/O mechanisms every command shares: PNG bytes, JSON files, refusing to overwrite, safetensors headers."""

import io
import json
import struct

import pytest
from PIL import Image

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


def test_png_bytes_are_pils_png_with_default_settings():
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert png_bytes(image) == buffer.getvalue()


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
