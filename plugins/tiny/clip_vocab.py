"""The real CLIP BPE vocabulary, taken from the `open_clip_torch` wheel on the package index (no model hub).

The Kandinsky priors' `CLIPTokenizer`s are built from OpenAI's `bpe_simple_vocab_16e6.txt.gz` (49,408 tokens: 256
bytes, the same with an end-of-word mark, 48,894 merges, `<|startoftext|>` and `<|endoftext|>`). That file ships in
the `open_clip_torch` wheel; the tiny world takes it from an installed `open_clip`, else downloads the pinned wheel
once with `pip download --no-deps` into the conceptlab cache, and checks its sha256 either way.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from conceptlab.engine.errors import BackendError
from conceptlab.engine.io.cache import cache_root

WHEEL = "open_clip_torch==3.3.0"
MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
MERGES = 49152 - 256 - 2
"""How many merge lines OpenAI's tokenizer reads (the file holds more)."""
VOCAB_SIZE = 49408


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _from_installed_open_clip() -> bytes | None:
    try:
        import open_clip  # optional: used only when installed
    except ImportError:
        return None
    path = Path(open_clip.__file__).parent / Path(MEMBER).name
    return path.read_bytes() if path.exists() else None


def _from_package_index() -> bytes:
    """`pip download` the pinned wheel (no dependencies) and read the vocabulary out of it."""
    with tempfile.TemporaryDirectory(prefix="conceptlab-open-clip-") as folder:
        command = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "--dest", folder]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(folder).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise BackendError(
                f"The tiny world needs the CLIP vocabulary from the {WHEEL} wheel, and pip could not download it "
                f"({reason}); run `pip install {WHEEL}` or put {Path(MEMBER).name} into {cache_root()}."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(MEMBER)


def vocab_file() -> Path:
    """The checked vocabulary file in the conceptlab cache, fetched on first use."""
    path = cache_root() / Path(MEMBER).name
    if path.exists() and _digest(path.read_bytes()) == SHA256:
        return path
    data = _from_installed_open_clip() or _from_package_index()
    if _digest(data) != SHA256:
        raise BackendError(f"{MEMBER} from {WHEEL} does not have the expected sha256; delete {path} and try again.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_bytes(data)
    os.replace(staging, path)
    return path


def bytes_to_unicode() -> dict[int, str]:
    """The byte-to-printable-character table of byte-level BPE (as in GPT-2 and CLIP)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


@functools.cache
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """OpenAI CLIP's vocabulary (token -> id) and merges, in the order its tokenizer builds them."""
    lines = gzip.decompress(vocab_file().read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges  # type: ignore[return-value]
