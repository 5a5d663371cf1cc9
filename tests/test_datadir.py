"""charlstm.data.datadir: a data directory opens memory-mapped, and every damaged or foreign one is
answered with one line naming the file (through the library and through every command that reads
one); the ids read as another vocabulary's; the start of a corpus without reading the rest."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from charlstm import cli
from charlstm.data import datadir
from charlstm.data.blocks import list_inputs
from charlstm.data.datadir import head_text, id_blocks, ids_in, open_data_dir
from charlstm.data.encode import encode_corpus
from charlstm.data.vocab import Vocab
from charlstm.errors import CharlstmError

TEXT = "the quick brown fox jumps over the lazy dog\n" * 40


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    encode_corpus(list_inputs([tmp_path / "c.txt"]), tmp_path / "data", workers=1)
    return tmp_path / "data"


def rewrite_json(path, change):
    value = json.loads(path.read_text(encoding="utf-8"))
    change(value)
    path.write_text(json.dumps(value), encoding="utf-8")


def test_it_opens_memory_mapped(data_dir):
    data = open_data_dir(data_dir)
    assert isinstance(data.ids, np.memmap) and data.ids.dtype == np.uint8
    assert data.vocab.decode(data.ids) == TEXT
    assert data.record == {"hash": data.manifest["hash"], "bytes": len(TEXT), "symbols": len(TEXT),
                           "unit": "grapheme", "newline": "keep", "encoding_errors": "strict", "min_count": 1}
    blocks = list(id_blocks(data, 3, 100, block=7))
    assert [len(b) for b in blocks] == [7] * 13 + [6]
    np.testing.assert_array_equal(np.concatenate(blocks), data.ids[3:100])


def damage(case, d):
    """Damage data directory d in one of the ways a file can be damaged; returns the words the
    one-line answer must hold."""
    ids = d / "ids.npy"
    if case == "no manifest":
        (d / "manifest.json").unlink()
        return ["not a charlstm data directory", "manifest.json", "corpus encode"]
    if case == "manifest not json":
        (d / "manifest.json").write_bytes(b"{\"format\": \x00")
        return ["manifest.json", "not valid JSON"]
    if case == "manifest of another format":
        rewrite_json(d / "manifest.json", lambda m: m.update(format="something-else"))
        return ["manifest.json", "not a charlstm data directory's manifest"]
    if case == "newer version":
        rewrite_json(d / "manifest.json", lambda m: m.update(version=99))
        return ["data format 99", "upgrade charlstm"]
    if case == "manifest counts other symbols":
        rewrite_json(d / "manifest.json", lambda m: m.update(symbols=m["symbols"] + 5))
        return ["vocab.json", "counts add up to 1,760 symbols but the manifest says 1,765"]
    if case == "manifest's dtype":
        rewrite_json(d / "manifest.json", lambda m: m.update(dtype="uint16"))
        return ["dtype uint16 does not fit a vocabulary of 28 symbols"]
    if case == "bad option":
        rewrite_json(d / "manifest.json", lambda m: m["options"].update(newline="sometimes"))
        return ["manifest.json", "unknown newline mode 'sometimes'"]
    if case == "vocab not json":
        (d / "vocab.json").write_text("[", encoding="utf-8")
        return ["vocab.json", "not valid JSON"]
    if case == "vocab of another size":
        rewrite_json(d / "vocab.json", lambda v: (v["symbols"].append("\u00e9"), v["counts"].append(0)))
        return ["vocab.json", "holds 29 symbols but the manifest says 28"]
    if case == "vocab without counts":
        rewrite_json(d / "vocab.json", lambda v: v.pop("counts"))
        return ["vocab.json", "counts must be a list of whole numbers"]
    if case == "truncated ids":
        with open(ids, "r+b") as f:
            f.truncate(ids.stat().st_size - 10)
        return ["ids.npy", "is truncated", "encode the corpus again"]
    if case == "ids with a tail":
        with open(ids, "ab") as f:
            f.write(b"\0" * 3)
        return ["ids.npy", "has 3 bytes after the ids"]
    if case == "ids not npy":
        ids.write_bytes(b"not an array at all")
        return ["ids.npy", "not a .npy file"]
    if case == "ids of another length":
        np.save(ids, np.zeros(10, dtype=np.uint8))
        return ["ids.npy", "holds 10 ids but the manifest says 1,760 symbols"]
    if case == "ids of another type":
        np.save(ids, np.zeros(1760, dtype=np.int32))
        return ["ids.npy", "not a 1-d array of unsigned ids"]
    if case == "ids beyond the vocabulary":
        values = np.load(ids)
        values[1234] = 200                  # a uint8 file can hold ids the 28-symbol vocabulary lacks
        np.save(ids, values)
        return ["ids.npy", "holds id 200 at position 1,234", "beyond the vocabulary's 28 symbols"]
    if case == "no ids":
        ids.unlink()
        return ["has no ids.npy"]
    raise AssertionError(case)


CASES = ["no manifest", "manifest not json", "manifest of another format", "newer version",
         "manifest counts other symbols", "manifest's dtype", "bad option", "vocab not json",
         "vocab of another size", "vocab without counts", "truncated ids", "ids with a tail", "ids not npy",
         "ids of another length", "ids of another type", "ids beyond the vocabulary", "no ids"]


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_data_directory_is_one_line(data_dir, case):
    needles = damage(case, data_dir)
    with pytest.raises(CharlstmError) as info:
        open_data_dir(data_dir)
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in needles), message


@pytest.mark.parametrize("case", ["manifest counts other symbols", "truncated ids", "ids beyond the vocabulary",
                                  "no manifest"])
@pytest.mark.parametrize("command", ["train", "eval", "trace", "novelty"])
def test_every_command_answers_a_damaged_data_directory_with_one_line(tmp_path, data_dir, case, command):
    from charlstm.api import Model
    needles = damage(case, data_dir)
    model = Model.create(Vocab(tuple(sorted(set(TEXT)))), hidden_size=4, num_layers=1)
    model.save(tmp_path / "m.npz")
    args = {"train": ["train", str(data_dir), "--out", str(tmp_path / "run"), "--quiet", "--max-steps", "1",
                      "--hidden", "4", "--layers", "1", "--batch-size", "2", "--seq-length", "8"],
            "eval": ["eval", str(tmp_path / "m.npz"), str(data_dir)],
            "trace": ["trace", str(tmp_path / "m.npz"), str(data_dir), "-o", str(tmp_path / "t.npz")],
            "novelty": ["novelty", str(tmp_path / "m.npz"), str(data_dir), "--n-samples", "1", "--length", "20"],
            }[command]
    result = CliRunner().invoke(cli.main, args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: "), lines
    if command != "trace" or case != "ids beyond the vocabulary":   # trace reads only the first symbols
        assert all(n in lines[0] for n in needles), lines[0]
    assert not (tmp_path / "run").exists()


def test_large_ids_are_checked_as_they_are_read(data_dir, monkeypatch):
    """Past CHECK_WHOLE_BYTES the ids are not read whole when opened: a bad id is found where it is
    read, by the streams and by id_blocks, with the same line."""
    damage("ids beyond the vocabulary", data_dir)
    monkeypatch.setattr(datadir, "CHECK_WHOLE_BYTES", 100)
    data = open_data_dir(data_dir)
    with pytest.raises(CharlstmError, match="holds id 200 at position 1,234"):
        for _ in id_blocks(data, block=100):
            pass
    from charlstm.data.streams import make_streams
    streams = make_streams(data.ids, 4, 10, len(data.vocab), str(data_dir / "ids.npy"))
    with pytest.raises(CharlstmError, match=r"ids\.npy: holds id 200 at position 1,234, beyond"):
        for k in range(streams.chunks_per_pass):
            streams.chunk(k)


def test_an_unreadable_directory_is_one_line(data_dir, monkeypatch):
    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "listdir", refused)
    with pytest.raises(CharlstmError, match=r"cannot read the data directory \(Permission denied\)"):
        open_data_dir(data_dir)


def test_not_a_directory_and_missing(tmp_path):
    with pytest.raises(CharlstmError, match="no such data directory"):
        open_data_dir(tmp_path / "nothing")
    (tmp_path / "f").write_text("x", encoding="utf-8")
    with pytest.raises(CharlstmError, match="not a directory"):
        open_data_dir(tmp_path / "f")


def test_ids_read_as_another_vocabularys(data_dir):
    data = open_data_dir(data_dir)
    wider = Vocab(tuple(sorted(set(TEXT) | set("XYZ"))))
    got = np.concatenate(list(ids_in(data, wider, block=100)))
    np.testing.assert_array_equal(got, wider.encode(TEXT))
    narrower = Vocab(tuple(sorted(set(TEXT) - {"z"})))
    with pytest.raises(CharlstmError, match="symbol 'z'"):
        list(ids_in(data, narrower))
    with pytest.raises(CharlstmError, match="encode the corpus with --unit codepoint"):
        list(ids_in(data, Vocab(wider.symbols, unit="codepoint")))


def test_the_start_of_a_corpus(tmp_path, data_dir):
    assert head_text(data_dir, 10) == TEXT[:10]
    assert head_text(data_dir, 10 ** 6) == TEXT
    (tmp_path / "e.txt").write_text("e\u0301" * 5000 + "\n", encoding="utf-8")
    head = head_text(tmp_path / "e.txt", 20)
    assert head.startswith("e\u0301" * 20) and len(head) >= 40
