"""The small I/O mechanisms every command shares: PNG bytes, JSON files, refusing to overwrite."""

import io

import pytest
from PIL import Image

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.io.images import png_bytes


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
