"""charlstm.checkpoint: the .npz contract (keys, meta JSON, no pickles), exact round trips, atomic
writes, and damaged or foreign files turned into CharlstmError."""

import json
import os

import numpy as np
import pytest

from charlstm.training.checkpoint import VERSION, load_checkpoint, save_checkpoint
from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, init_params, param_shapes
from charlstm.data.vocab import build_vocab

TEXT = "h\u00e9llo w\u00f6rld \U0001F44D\U0001F3FD\r\n" * 3 + "q"


def make(dtype=np.float32, min_count=1):
    vocab = build_vocab(TEXT, min_count=min_count)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=5, num_layers=2, dropout=0.1, embedding_size=0)
    params = init_params(config, np.random.default_rng(0), dtype)
    params["lstm.1.b"] += np.linspace(-1, 1, 20).astype(dtype)   # not just the init values
    return params, config, vocab


def test_round_trip_model_only(tmp_path):
    params, config, vocab = make(min_count=2)
    path = tmp_path / "m.npz"
    save_checkpoint(path, params, config, vocab)
    ckpt = load_checkpoint(path)
    assert ckpt.config == config
    assert ckpt.vocab == vocab and ckpt.vocab.unk == vocab.unk and ckpt.vocab.unit == vocab.unit
    assert ckpt.train is None and ckpt.extra == {}
    assert list(ckpt.params) == list(param_shapes(config))
    for k in params:
        assert ckpt.params[k].dtype == params[k].dtype
        np.testing.assert_array_equal(ckpt.params[k], params[k])
    assert ckpt.vocab.decode(ckpt.vocab.encode(TEXT, unknown="unk")) == vocab.decode(vocab.encode(TEXT, unknown="unk"))


def test_round_trip_with_training_state(tmp_path):
    params, config, vocab = make(np.float64)
    rng = np.random.default_rng(7)
    extra = {f"adam.m.{k}": rng.standard_normal(p.shape) for k, p in params.items()}
    extra.update({f"adam.v.{k}": rng.random(p.shape) for k, p in params.items()})
    extra["state.h"] = rng.standard_normal((2, 3, 5))
    extra["state.c"] = rng.standard_normal((2, 3, 5))
    train = {"config": {"lr": 0.002, "seed": 3}, "progress": {"step": 12, "best_val": None},
             "adam_step": 12, "rng": rng.bit_generator.state}
    path = tmp_path / "t.npz"
    save_checkpoint(path, params, config, vocab, train=train, extra=extra)
    ckpt = load_checkpoint(path)
    assert ckpt.train == train
    assert set(ckpt.extra) == set(extra)
    for k in extra:
        np.testing.assert_array_equal(ckpt.extra[k], extra[k])
    # the generator's state survives JSON exactly: the same numbers come out
    restored = np.random.default_rng()
    restored.bit_generator.state = ckpt.train["rng"]
    np.testing.assert_array_equal(restored.random(5), rng.random(5))


def test_documented_layout_loads_without_pickle(tmp_path):
    params, config, vocab = make(min_count=2)
    path = tmp_path / "m.npz"
    extra = {"state.h": np.zeros((2, 4, 5), np.float32), "state.c": np.ones((2, 4, 5), np.float32)}
    save_checkpoint(path, params, config, vocab, train={"progress": {"step": 1}}, extra=extra)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        meta_raw = data["meta"]
        arrays = {k: data[k] for k in data.files if k != "meta"}
    V, H = len(vocab), 5
    assert keys == {"meta", "lstm.0.Wx", "lstm.0.Wh", "lstm.0.b", "lstm.1.Wx", "lstm.1.Wh", "lstm.1.b",
                    "head.W", "head.b", "state.h", "state.c"}
    assert meta_raw.shape == () and meta_raw.dtype.kind == "U"
    meta = json.loads(str(meta_raw))
    assert meta["format"] == "charlstm" and meta["version"] == 3 and VERSION == 4   # 4: a model with labels
    assert meta["config"] == {"vocab_size": V, "hidden_size": 5, "num_layers": 2, "dropout": 0.1, "cell": "lstm",
                              "embedding_size": 0}
    assert meta["vocab"] == {"unit": "grapheme", "symbols": list(vocab.symbols), "unk": vocab.unk}
    assert meta["train"] == {"progress": {"step": 1}}
    assert arrays["lstm.0.Wx"].shape == (V, 4 * H) and arrays["lstm.1.Wx"].shape == (H, 4 * H)
    assert arrays["lstm.0.Wh"].shape == (H, 4 * H) and arrays["lstm.0.b"].shape == (4 * H,)
    assert arrays["head.W"].shape == (H, V) and arrays["head.b"].shape == (V,)
    np.testing.assert_array_equal(arrays["lstm.0.b"][H:2 * H], 1.0)    # i, f, g, o: f second
    assert all(a.dtype.kind == "f" for a in arrays.values())


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    params, config, vocab = make()
    path = tmp_path / "latest.npz"
    save_checkpoint(path, params, config, vocab)
    params["head.b"] += 1
    save_checkpoint(path, params, config, vocab)           # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["latest.npz"]
    np.testing.assert_array_equal(load_checkpoint(path).params["head.b"], params["head.b"])


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    params, config, vocab = make()
    path = tmp_path / "latest.npz"
    save_checkpoint(path, params, config, vocab)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    params["head.b"] += 1
    with pytest.raises(CharlstmError, match="untouched"):
        save_checkpoint(path, params, config, vocab)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["latest.npz"]


def write_with_meta(path, meta_update, params=None):
    p, config, vocab = make()
    save_checkpoint(path, params or p, config, vocab)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(meta_update)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_newer_version_is_refused(tmp_path):
    path = tmp_path / "future.npz"
    write_with_meta(path, {"version": VERSION + 1})
    with pytest.raises(CharlstmError, match="newer"):
        load_checkpoint(path)


def test_not_a_charlstm_file(tmp_path):
    path = tmp_path / "other.npz"
    write_with_meta(path, {"format": "something-else"})
    with pytest.raises(CharlstmError, match="not a charlstm checkpoint"):
        load_checkpoint(path)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(CharlstmError, match="not a charlstm checkpoint"):
        load_checkpoint(plain)


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("this is not an archive\n" * 10)
    with pytest.raises(CharlstmError, match="not an .npz"):
        load_checkpoint(path)


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.999])
def test_truncated_file(tmp_path, fraction):
    params, config, vocab = make()
    path = tmp_path / "m.npz"
    save_checkpoint(path, params, config, vocab)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(CharlstmError):
        load_checkpoint(path)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    p, config, vocab = make()
    save_checkpoint(path, p, config, vocab)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["head.b"] = np.array([object()] * len(vocab), dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(CharlstmError, match="Python objects"):
        load_checkpoint(path)


def test_shape_mismatch_and_non_finite_weights(tmp_path):
    params, config, vocab = make()
    bad = dict(params, **{"head.W": np.zeros((5, len(vocab) + 1), np.float32)})
    path = tmp_path / "shape.npz"
    save_checkpoint(path, bad, config, vocab)
    with pytest.raises(CharlstmError, match="head.W"):
        load_checkpoint(path)
    nan = dict(params, **{"lstm.0.Wh": np.full((5, 20), np.nan, np.float32)})
    save_checkpoint(path, nan, config, vocab)
    with pytest.raises(CharlstmError, match="NaN"):
        load_checkpoint(path)


# --- format 2: the cell family -----------------------------------------------------------------

def save_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def arrays_of(config, vocab, params, **meta_changes):
    meta = {"format": "charlstm", "version": VERSION, "config": config.to_dict(), "vocab": vocab.to_dict(),
            "train": None}
    meta["config"].update(meta_changes)
    return {"meta": np.array(json.dumps(meta)), **params}


@pytest.mark.parametrize("embedding_size", [0, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "peephole"])
def test_every_cell_round_trips_under_its_own_keys(tmp_path, cell, embedding_size):
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=2, cell=cell, embedding_size=embedding_size)
    params = init_params(config, np.random.default_rng(1))
    save_checkpoint(tmp_path / "m.npz", params, config, vocab)
    back = load_checkpoint(tmp_path / "m.npz")
    assert back.config == config and set(back.params) == set(params)
    assert all(k.startswith((f"{cell}.", "head.", "embedding")) for k in back.params)
    assert ("embedding" in back.params) == bool(embedding_size)
    for k in params:
        np.testing.assert_array_equal(back.params[k], params[k])


def test_a_format_1_checkpoint_is_an_lstm(tmp_path):
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1)
    arrays = arrays_of(config, vocab, init_params(config, np.random.default_rng(0)))
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 1
    del meta["config"]["cell"]
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(tmp_path / "v1.npz", arrays)
    assert load_checkpoint(tmp_path / "v1.npz").config.cell == "lstm"


def test_a_format_2_checkpoint_reads_one_hot_input(tmp_path):
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1, cell="gru", embedding_size=0)
    arrays = arrays_of(config, vocab, init_params(config, np.random.default_rng(0)))
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = 2
    del meta["config"]["embedding_size"]
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(tmp_path / "v2.npz", arrays)
    back = load_checkpoint(tmp_path / "v2.npz")
    assert back.config == config and "embedding" not in back.params


def test_an_embedding_of_the_wrong_shape_or_missing_is_one_line(tmp_path):
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1, embedding_size=3)
    params = init_params(config, np.random.default_rng(0))
    wrong = {**params, "embedding": np.zeros((len(vocab), 4), np.float32)}
    save_npz(tmp_path / "a.npz", arrays_of(config, vocab, wrong))
    with pytest.raises(CharlstmError, match=r"a\.npz: parameter embedding has shape \(\d+, 4\), the config says"):
        load_checkpoint(tmp_path / "a.npz")
    missing = {k: v for k, v in params.items() if k != "embedding"}
    save_npz(tmp_path / "b.npz", arrays_of(config, vocab, missing))
    with pytest.raises(CharlstmError, match=r"b\.npz: missing parameter embedding"):
        load_checkpoint(tmp_path / "b.npz")


def test_an_unknown_cell_is_one_line(tmp_path):
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1)
    save_npz(tmp_path / "m.npz", arrays_of(config, vocab, init_params(config, np.random.default_rng(0)),
                                           cell="nonsense"))
    with pytest.raises(CharlstmError, match=r"m\.npz: unknown cell 'nonsense': use one of lstm, gru, rnn, peephole"):
        load_checkpoint(tmp_path / "m.npz")


def test_keys_of_one_cell_under_another_name_are_one_line(tmp_path):
    """A GRU config with an LSTM's keys, and a GRU config with GRU keys of an LSTM's shapes."""
    vocab = build_vocab(TEXT)
    lstm = ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1)
    lstm_params = init_params(lstm, np.random.default_rng(0))
    save_npz(tmp_path / "a.npz", arrays_of(lstm, vocab, lstm_params, cell="gru"))
    with pytest.raises(CharlstmError, match=r"a\.npz: holds lstm parameters \('lstm\.0\.Wx'\) but its config names "
                                            "the gru cell"):
        load_checkpoint(tmp_path / "a.npz")
    renamed = {k.replace("lstm.", "gru."): v for k, v in lstm_params.items()}
    renamed["gru.0.bx"] = renamed.pop("gru.0.b")
    renamed["gru.0.bh"] = renamed["gru.0.bx"].copy()
    save_npz(tmp_path / "b.npz", arrays_of(lstm, vocab, renamed, cell="gru"))
    with pytest.raises(CharlstmError, match=r"b\.npz: parameter gru\.0\.Wx has shape \(\d+, 16\), the config says "
                                            r"\(\d+, 12\)"):
        load_checkpoint(tmp_path / "b.npz")


def test_a_member_that_would_unpack_into_more_than_its_shape_is_refused_unread(tmp_path):
    """A small file whose member declares gigabytes: refused from the declared size, before any
    decompression (a 4 GB member of zeros compresses to a few MB)."""
    import zipfile
    params, config, vocab = make()
    path = tmp_path / "m.npz"
    save_checkpoint(path, params, config, vocab)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("adam.m.head.b.npy", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(64):                     # 64 MiB declared, far over (V,) float64
                member.write(block)
    assert path.stat().st_size < 2 << 20
    with pytest.raises(CharlstmError, match="declares 67,108,864 bytes, more than its shape allows"):
        load_checkpoint(path)
