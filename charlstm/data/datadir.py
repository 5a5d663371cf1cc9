"""A data directory: a corpus encoded once, memory-mapped by every command that reads it.

    ids.npy        the symbol ids of all the inputs, in order: a 1-d .npy array of the smallest
                   unsigned type that holds the vocabulary (uint8, uint16 or uint32)
    vocab.json     {"unit", "symbols", "unk", "counts"}: a symbol's id is its position in symbols,
                   unk the id of the unknown symbol U+FFFD (or null), counts[k] how often symbol k
                   occurs (the unknown symbol counts every rare symbol it stands for)
    manifest.json  {"format": "charlstm-data", "version": 1, "symbols", "dtype", "vocab_size",
                    "hash": "sha256:..." of the inputs' bytes one after another, "bytes",
                    "options": {"unit", "newline", "encoding_errors", "min_count"},
                    "inputs": [{"name", "path", "bytes", "stored_bytes", "gzip", "mtime_ns",
                                "sha256"}, ...]}

data/encode.py writes it under a temporary name beside its own, the manifest last, and renames
it into place, so a directory under the real name is always whole. Opening one checks what is
cheap to check: the manifest against vocab.json and against ids.npy's header and size; ids past
the vocabulary are looked for in the whole file when it is small, and otherwise as they are
read (data/streams.py and `id_blocks`).

A corpus's record (its hash, size, symbol count and reading options) is what a checkpoint keeps
to tell on --resume whether it is being given the corpus it was trained on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from charlstm.data.streams import release_pages
from charlstm.data.vocab import UNITS, Vocab, ids_dtype
from charlstm.errors import CharlstmError

FORMAT = "charlstm-data"
VERSION = 1
IDS, VOCAB, MANIFEST = "ids.npy", "vocab.json", "manifest.json"
DTYPES = ("uint8", "uint16", "uint32")
CHECK_WHOLE_BYTES = 64 << 20      # ids files up to this size are checked whole when opened
_MAX_JSON_BYTES = 256 << 20       # a manifest of a million inputs, a vocabulary of millions of symbols


@dataclass(frozen=True)
class ReadOptions:
    """How the bytes of a corpus become symbols; CLI options of the same names."""

    unit: str = "grapheme"             # grapheme | codepoint
    newline: str = "keep"              # keep | normalize (CRLF and lone CR become LF)
    encoding_errors: str = "strict"    # strict | replace
    min_count: int = 1                 # rarer symbols map to the unknown symbol

    def __post_init__(self):
        checks = [(self.unit in UNITS, f"unknown unit {self.unit!r}: use one of {', '.join(UNITS)}"),
                  (self.newline in ("keep", "normalize"), f"unknown newline mode {self.newline!r}: use keep or normalize"),
                  (self.encoding_errors in ("strict", "replace"),
                   f"unknown encoding-error mode {self.encoding_errors!r}: use strict or replace"),
                  (isinstance(self.min_count, int) and not isinstance(self.min_count, bool) and self.min_count >= 1,
                   "--min-count must be at least 1")]
        for ok, message in checks:
            if not ok:
                raise CharlstmError(message)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DataDir:
    """An opened data directory: ids is a read-only memory map of ids.npy."""

    path: Path
    ids: np.ndarray
    vocab: Vocab
    counts: list
    manifest: dict

    @property
    def options(self) -> ReadOptions:
        return ReadOptions(**self.manifest["options"])

    @property
    def record(self) -> dict:
        m = self.manifest
        return corpus_record(m["hash"], m["bytes"], m["symbols"], self.options)

    def __len__(self) -> int:
        return len(self.ids)


def is_data_dir(path) -> bool:
    """A directory is read as a data directory (and refused if it is not a whole one)."""
    return Path(path).is_dir()


def open_data_dir(path, check_ids: bool | None = None) -> DataDir:
    """Open and check a data directory; every problem is one CharlstmError line naming the file.

    check_ids: look for ids past the vocabulary in the whole of ids.npy now (default: when it is
    at most CHECK_WHOLE_BYTES; larger files are checked as they are read)."""
    path = Path(path)
    if not path.exists():
        raise CharlstmError(f"{path}: no such data directory")
    if not path.is_dir():
        raise CharlstmError(f"{path}: not a directory, so not a data directory")
    try:
        names = set(os.listdir(path))
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read the data directory ({e.strerror or e})") from None
    if MANIFEST not in names:
        raise CharlstmError(f"{path}: is a directory but not a charlstm data directory (it has no {MANIFEST}); "
                            "make one with: charlstm corpus encode FILES... -o DIR")
    manifest = _check_manifest(_read_json(path / MANIFEST), path / MANIFEST)
    for name in (VOCAB, IDS):
        if name not in names:
            raise CharlstmError(f"{path}: the data directory has no {name}")
    vocab, counts = _read_vocab(path / VOCAB, manifest)
    ids = _map_ids(path / IDS, manifest)
    data = DataDir(path=path, ids=ids, vocab=vocab, counts=counts, manifest=manifest)
    if check_ids if check_ids is not None else ids.nbytes <= CHECK_WHOLE_BYTES:
        for _ in id_blocks(data):
            pass
    return data


def id_blocks(data: DataDir, start: int = 0, stop: int | None = None, block: int = 1 << 22):
    """ids[start:stop] in blocks (plain arrays), each checked against the vocabulary, the pages
    of the memory map handed back as it goes, so memory stays bounded over any length."""
    stop = len(data.ids) if stop is None else stop
    limit = len(data.vocab)
    check = np.iinfo(data.ids.dtype).max >= limit
    for at in range(start, stop, block):
        part = np.array(data.ids[at:min(stop, at + block)])
        if check and part.size and int(part.max()) >= limit:
            where = at + int(np.argmax(part >= limit))
            raise CharlstmError(f"{data.path / IDS}: holds id {int(data.ids[where])} at position {where:,}, beyond "
                                f"the vocabulary's {limit} symbols; the file is damaged (encode the corpus again)")
        release_pages(data.ids)
        yield part


def ids_in(data: DataDir, vocab: Vocab, block: int = 1 << 22):
    """data's ids as ids of another vocabulary (a model's), block by block: a symbol the other
    vocabulary lacks becomes its unknown symbol (an error naming the symbol if it has none)."""
    if data.vocab == vocab:
        yield from id_blocks(data, block=block)
        return
    if data.vocab.unit != vocab.unit:
        raise CharlstmError(f"{data.path}: its symbols are {data.vocab.unit}s, the model's are {vocab.unit}s; "
                            f"encode the corpus with --unit {vocab.unit}")
    table = np.array([vocab.id_of(s, -1 if vocab.unk is None else vocab.unk) for s in data.vocab.symbols],
                     dtype=np.int64)
    for ids in id_blocks(data, block=block):
        out = table[ids]
        if (out < 0).any():
            raise vocab.unknown_symbol_error(data.vocab.symbols[int(ids[np.argmax(out < 0)])])
        yield out


def head_text(path, symbols: int, unit: str = "grapheme", errors: str = "strict") -> str:
    """The start of a corpus, a text file or a data directory, holding at least `symbols`
    symbols (all of it if it holds fewer), whatever the corpus's size. errors: how a text file's
    invalid bytes are read."""
    from charlstm.data.blocks import read_head      # blocks reads files; this module only data directories
    if not is_data_dir(path):
        return read_head(path, symbols, unit, errors)
    data = open_data_dir(path, check_ids=False)
    ids = next(id_blocks(data, stop=min(len(data.ids), symbols), block=max(1, symbols)), np.zeros(0, np.uint8))
    return data.vocab.decode(ids)


def _read_json(path: Path):
    try:
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            raise CharlstmError(f"{path}: is {size:,} bytes, too large for a data directory's record")
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CharlstmError(f"{path}: not valid JSON ({type(e).__name__}); the data directory is damaged") from None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_manifest(m, path: Path) -> dict:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CharlstmError(f"{path}: not a charlstm data directory's manifest")
    version = m.get("version")
    if not _whole(version):
        raise CharlstmError(f"{path}: the manifest has no format version")
    if version > VERSION:
        raise CharlstmError(f"{path}: written in data format {version}, newer than this charlstm reads "
                            f"({VERSION}); upgrade charlstm")
    for key in ("symbols", "vocab_size", "bytes"):
        if not _whole(m.get(key)):
            raise CharlstmError(f"{path}: the manifest's {key!r} is not a whole number")
    if m.get("dtype") not in DTYPES:
        raise CharlstmError(f"{path}: the manifest's dtype {m.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    if not isinstance(m.get("hash"), str) or not isinstance(m.get("inputs"), list):
        raise CharlstmError(f"{path}: the manifest lacks the corpus's hash or its list of inputs")
    options = m.get("options")
    if not isinstance(options, dict) or set(options) != set(ReadOptions.__dataclass_fields__):
        raise CharlstmError(f"{path}: the manifest's reading options are missing or incomplete")
    try:
        ReadOptions(**options)
    except CharlstmError as e:
        raise CharlstmError(f"{path}: {e}") from None
    return m


def _read_vocab(path: Path, manifest: dict) -> tuple[Vocab, list]:
    d = _read_json(path)
    if not isinstance(d, dict):
        raise CharlstmError(f"{path}: not a vocabulary (a JSON object with unit, symbols, unk and counts)")
    try:
        vocab = Vocab.from_dict(d)
    except CharlstmError as e:
        raise CharlstmError(f"{path}: {e}") from None
    counts = d.get("counts")
    if not isinstance(counts, list) or len(counts) != len(vocab) or not all(_whole(n) for n in counts):
        raise CharlstmError(f"{path}: counts must be a list of whole numbers, one per symbol")
    if len(vocab) != manifest["vocab_size"]:
        raise CharlstmError(f"{path}: holds {len(vocab)} symbols but the manifest says {manifest['vocab_size']}")
    if vocab.unit != manifest["options"]["unit"]:
        raise CharlstmError(f"{path}: its unit is {vocab.unit} but the manifest says {manifest['options']['unit']}")
    if sum(counts) != manifest["symbols"]:
        raise CharlstmError(f"{path}: its counts add up to {sum(counts):,} symbols but the manifest says "
                            f"{manifest['symbols']:,}")
    if np.dtype(manifest["dtype"]) != np.dtype(ids_dtype(len(vocab))):
        raise CharlstmError(f"{path.parent / MANIFEST}: dtype {manifest['dtype']} does not fit a vocabulary of "
                            f"{len(vocab)} symbols ({np.dtype(ids_dtype(len(vocab))).name} does)")
    return vocab, counts


def _map_ids(path: Path, manifest: dict) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"format version {version}")
            except (ValueError, SyntaxError, EOFError) as e:
                raise CharlstmError(f"{path}: not a .npy file, or its header is damaged ({e})") from None
            header = f.tell()
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(shape) != 1 or fortran or dtype.name not in DTYPES:
        raise CharlstmError(f"{path}: holds a {dtype} array of shape {shape}, not a 1-d array of unsigned ids")
    if dtype.name != manifest["dtype"]:
        raise CharlstmError(f"{path}: holds {dtype.name} ids but the manifest says {manifest['dtype']}")
    if shape[0] != manifest["symbols"]:
        raise CharlstmError(f"{path}: holds {shape[0]:,} ids but the manifest says {manifest['symbols']:,} symbols")
    expected = header + shape[0] * dtype.itemsize
    if size < expected:
        raise CharlstmError(f"{path}: is truncated ({size:,} bytes of the {expected:,} its header declares); "
                            "encode the corpus again")
    if size > expected:
        raise CharlstmError(f"{path}: has {size - expected:,} bytes after the ids its header declares")
    if shape[0] == 0:
        return np.zeros(0, dtype=dtype)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CharlstmError(f"{path}: cannot map it ({e})") from None


# --- what a checkpoint remembers of its corpus -------------------------------------------------

def corpus_record(sha256: str, size: int, symbols: int, options: ReadOptions) -> dict:
    """The corpus a run trains on: its hash and size in bytes, its symbols, how it was read."""
    return {"hash": sha256, "bytes": size, "symbols": symbols, **options.to_dict()}


def corpus_difference(saved: dict | None, current: dict) -> str | None:
    """How the corpus given now differs from the one a checkpoint was trained on (None: it does
    not, or the checkpoint does not say)."""
    if not isinstance(saved, dict):
        return None
    for key in ReadOptions.__dataclass_fields__:
        if key in saved and saved[key] != current.get(key):
            option = "--" + key.replace("_", "-")
            return (f"the checkpoint's corpus was read with {option} {saved[key]}, this one with "
                    f"{option} {current.get(key)}")
    if saved.get("hash") == current.get("hash"):
        return None
    if saved.get("bytes") != current.get("bytes"):
        found = f"{current.get('bytes'):,} bytes, the run's {saved.get('bytes'):,}"
    else:
        found = (f"the same size, other content: sha256 {_digest(current)}..., the run's "
                 f"{_digest(saved)}...")
    return f"it is not the corpus the run was trained on ({found})"


def _digest(record: dict) -> str:
    return str(record.get("hash", "?")).split(":")[-1][:12]


__all__ = ["FORMAT", "VERSION", "IDS", "VOCAB", "MANIFEST", "ReadOptions", "DataDir", "is_data_dir",
           "open_data_dir", "id_blocks", "ids_in", "head_text", "corpus_record", "corpus_difference"]
