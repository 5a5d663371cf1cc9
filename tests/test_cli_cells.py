"""Every command runs with every cell: train, eval, sample (and --beam), trace, neurons, viz,
report, check, novelty and export, through the command line, on a tiny model of each cell."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charlstm import cli
from charlstm.nn.cells import CELLS
from charlstm.training.checkpoint import load_checkpoint

TEXT = "aaXbb\naXb\naaaXbbb\n" * 40


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "counting.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def run(*args):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output)
    return result


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_command_runs_with_every_cell(cell, corpus, tmp_path):
    out = tmp_path / "run"
    run("train", corpus, "--out", out, "--cell", cell, "--layers", 2, "--hidden", 8, "--batch-size", 4,
        "--seq-length", 16, "--max-steps", 6, "--eval-every", 3, "--sample-length", 20, "--quiet")
    ckpt = out / "best.npz"
    saved = load_checkpoint(ckpt)
    assert saved.config.cell == cell and all(k.startswith((f"{cell}.", "head.", "embedding")) for k in saved.params)
    assert json.loads(run("eval", ckpt, corpus, "--json").stdout)["symbols"] == len(TEXT) - 1
    assert run("sample", ckpt, "--length", 30, "--seed", 1).stdout.strip()
    assert len(run("sample", ckpt, "--length", 10, "--beam", 3, "--num-samples", 2).stdout) >= 2 * 11
    trace = tmp_path / "t.npz"
    run("trace", ckpt, corpus, "-o", trace, "--max-symbols", 200)
    with np.load(trace) as z:
        meta = json.loads(str(z["meta"]))
        assert meta["cell"] == cell and tuple(meta["quantities"]) == CELLS[cell].quantities
        assert all(z[q].shape == (2, 200, 8) for q in CELLS[cell].quantities)
    for quantity in ("all",) + CELLS[cell].quantities:
        run("neurons", ckpt, trace, "--feature", "count", "--quantity", quantity, "--top", 2)
    page = tmp_path / "viz.html"
    run("viz", ckpt, trace, "-o", page, "--quantity", CELLS[cell].quantities[-1])
    assert f'"quantities":{json.dumps(list(CELLS[cell].quantities), separators=(",", ":"))}' in page.read_text()
    run("report", out, "-o", tmp_path / "report.html", "--corpus", corpus)
    run("check", "counting", ckpt, "--n", 20, "--max-n", 3)
    run("novelty", ckpt, corpus, "--n-samples", 2, "--length", 30)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_quantity_the_cell_lacks_is_one_line(cell, corpus, tmp_path):
    out = tmp_path / "run"
    run("train", corpus, "--out", out, "--cell", cell, "--layers", 1, "--hidden", 4, "--batch-size", 4,
        "--seq-length", 8, "--max-steps", 2, "--eval-every", 2, "--sample-length", 0, "--quiet")
    other = next(q for c in CELLS.values() for q in c.quantities if q not in CELLS[cell].quantities)
    result = CliRunner().invoke(cli.main, ["neurons", str(out / "best.npz"), str(corpus), "--feature", "count",
                                           "--quantity", other])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert f"for the {cell} cell" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["train", "--cell", "nonsense"], "Invalid value for '--cell'"),
    (["sample"], "Missing argument 'CHECKPOINT'"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_a_usage_error_is_one_line(args, words):
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: ") and words in lines[0], result.stderr
    assert "--help" in lines[0]
