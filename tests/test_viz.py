"""The pages: `viz` (charlstm/viz.py) and `report` (charlstm/report.py).

Every page is checked as a file (self-contained, one span per symbol, the data it embeds). When
Chromium is installed (`apt-get install chromium`; CI installs it), the pages are also rendered
headless, as a person would see them: the DOM after the scripts ran is checked (colours follow the
chosen unit, the hover box shows the candidates) and a screenshot is taken.
"""

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm.cli import main
from charlstm.errors import CharlstmError
from charlstm.analysis.traces import trace
from charlstm.analysis.report import line_chart, read_metrics, render_report
from charlstm.analysis.viz import page_data, render_page
from charlstm.data.vocab import build_vocab
from test_traces import COUNTING, planted_counting_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                    "(apt-get install chromium) so the pages are not rendered")
TEXT = 'def f(x):\n    return "<b>&" + x  # tag\n' * 3


class _Page(HTMLParser):
    """The spans of <pre id="text"> (their attributes and text) and the elements with an id."""

    def __init__(self, page: str):
        super().__init__()
        self.spans, self.ids, self._in_text, self._span = [], {}, False, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = attrs
        if tag == "pre" and attrs.get("id") == "text":
            self._in_text = True
        elif tag == "span" and self._in_text:
            self._span = [attrs, ""]
            self.spans.append(self._span)

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_text = False
        if tag == "span":
            self._span = None

    def handle_data(self, data):
        if self._span is not None:
            self._span[1] += data


def assert_self_contained(page: str):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def small_trace(text=TEXT, hidden=4, layers=2):
    model = charlstm.Model.create(build_vocab(text), hidden_size=hidden, num_layers=layers, seed=3)
    return trace(model, text, top=3)


# --- viz, as a file ------------------------------------------------------------------------------

def test_page_is_self_contained_with_one_span_per_symbol():
    t = small_trace()
    page = render_page(t, layer=1, unit=2, quantity="c", title="a <test>")
    assert_self_contained(page)
    parsed = _Page(page)
    assert len(parsed.spans) == len(t) == len(TEXT)
    assert "".join(text for _, text in parsed.spans) == TEXT          # escaped, and read back as written
    assert "<title>a &lt;test&gt;</title>" in page
    data = json.loads(re.search(r'<script type="application/json" id="charlstm-data">(.*?)</script>',
                                page, re.S).group(1))
    assert data["start"] == {"layer": 1, "unit": 2, "quantity": "c"} and data["n"] == len(t)
    assert len(data["series"]) == 6 * 2 * 4 and data["series"][:2] == ["h/1/2", "c/1/2"]
    values = np.frombuffer(base64.b64decode(data["values"]), dtype=np.int8).reshape(len(data["series"]), -1)
    for k, key in enumerate(data["series"]):
        q, layer, unit = key.split("/")
        exact = t.values(q)[int(layer), :, int(unit)]
        assert np.abs(values[k] * data["scales"][k] / 127 - exact).max() <= data["scales"][k] / 254 + 1e-6
    surprise = np.frombuffer(base64.b64decode(data["surprise"]), dtype=np.uint16)
    assert surprise[0] == 65535 and np.allclose(surprise[1:] / 1000, t.loss[:-1], atol=1e-3)


def test_page_keeps_to_its_value_budget_and_offers_ranked_units():
    from charlstm.analysis.features import rank_units
    t = trace(planted_counting_model(), COUNTING)
    ranked = {"count": rank_units(t, "count", top=2)}
    data = page_data(t, layer=0, unit=1, quantity="h", ranked=ranked, max_values=len(t) * 8)
    # the chosen unit's six series first, then the best ranked unit's
    assert data["series"][:8] == ["h/0/1", "c/0/1", "i/0/1", "f/0/1", "g/0/1", "o/0/1", "h/0/3", "c/0/3"]
    assert len(data["series"]) == 8
    assert data["ranked"][0] == {"feature": "count", "layer": 0, "unit": 3, "quantity": "c", "r": 1.0}
    with pytest.raises(CharlstmError, match="unit must be between"):
        page_data(t, unit=99)


def test_viz_command_starts_on_the_best_ranked_unit(tmp_path):
    planted_counting_model().save(tmp_path / "m.npz")
    (tmp_path / "c.txt").write_text(COUNTING)
    r = CliRunner().invoke(main, ["viz", str(tmp_path / "m.npz"), str(tmp_path / "c.txt"), "-o",
                                  str(tmp_path / "page.html"), "--feature", "count", "--feature", "line-position"])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "page.html").read_text()
    assert '"start":{"layer":0,"unit":3,"quantity":"c"}' in page and '"feature":"line-position"' in page
    assert len(_Page(page).spans) == len(COUNTING)
    r = CliRunner().invoke(main, ["viz", str(tmp_path / "m.npz"), str(tmp_path / "c.txt"), "-o",
                                  str(tmp_path / "p2.html"), "--unit", "7"])
    assert r.exit_code == 1 and "unit must be between 0 and 4" in r.output


# --- viz, in a browser ---------------------------------------------------------------------------

def chromium(url: str, *flags: str) -> str:
    """Load a page headless, let its scripts run, and return the DOM (or what a flag asks for)."""
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--virtual-time-budget=3000", *flags, url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def colour(value: float) -> str:
    """The page's colour for a unit value in [-1, 1] (its quantized form), as Chromium writes it."""
    q = int(np.clip(np.round(value * 127), -127, 127))
    end = (232, 84, 72) if q < 0 else (84, 140, 232)
    t = abs(q) / 127
    return "rgb({}, {}, {})".format(*(round(255 + (e - 255) * t) for e in end))


@needs_chromium
def test_viz_page_in_chromium_recolours_20000_symbols_and_shows_the_hover_box(tmp_path):
    text = (COUNTING * 100)[:20_000]
    t = trace(planted_counting_model(), text, top=3)
    path = tmp_path / "page.html"
    path.write_text(render_page(t, layer=0, unit=3, quantity="c"), encoding="utf-8")
    url = path.as_uri()

    dom = chromium(url + "#layer=0&unit=1&quantity=h&hover=5", "--dump-dom")
    page = _Page(dom)
    assert page.ids["text"] is not None and len(page.spans) == 20_000
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body and 'data-series="h/0/1"' in body
    assert float(re.search(r'data-recolour-ms="([0-9.]+)"', body).group(1)) < 1000    # responsive
    styles = [attrs.get("style", "") for attrs, _ in page.spans]
    for k in (0, 1, 2, 500, 19_999):
        assert f"background-color: {colour(t.h[0, k, 1])};" in styles[k]
    # the hover box of symbol 5: its value, the loss of predicting it, and the top candidates
    hover = re.search(r'<div id="hover" style="([^"]*)">(.*?)</div>', dom, re.S)
    assert "display: block" in hover.group(1)
    stored = np.round(t.h[0, 5, 1] * 127) / 127       # the page holds values to 1/127
    assert f'symbol 5 · h[0][1] = <span id="hv">{stored:.3f}</span>' in hover.group(2)
    best = t.vocab[t.top_ids[5, 0]]
    assert f"<td>{best}</td><td>{100 * round(t.top_probs[5, 0] * 255) / 255:.1f}%</td>" in hover.group(2)
    assert f"loss of predicting it: {t.loss[4]:.3f} nats" in hover.group(2)

    other = _Page(chromium(url + "#layer=0&unit=3&quantity=c", "--dump-dom"))
    other_styles = [attrs.get("style", "") for attrs, _ in other.spans]
    assert other_styles != styles                     # another unit, other colours
    c = t.c[0, :, 3]
    scale = max(1.0, float(np.abs(c).max()))
    for k in (0, 1, 2, 3):                            # "aaa": the counting cell rises
        q = np.clip(np.round(c[k] * 127 / scale), -127, 127)
        assert f"background-color: {colour(q * scale / 127)};" in other_styles[k]

    loss = _Page(chromium(url + "#mode=loss", "--dump-dom"))
    loss_styles = [attrs.get("style", "") for attrs, _ in loss.spans]
    assert "background-color" not in loss_styles[0]   # nothing predicted the first symbol
    assert all("background-color" in s for s in loss_styles[1:100])


@needs_chromium
def test_viz_and_report_screenshots(tmp_path):
    t = small_trace()
    (tmp_path / "page.html").write_text(render_page(t), encoding="utf-8")
    shot = tmp_path / "viz.png"
    chromium((tmp_path / "page.html").as_uri() + "#hover=12", f"--screenshot={shot}", "--window-size=900,500")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000


# --- report --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real (tiny) training run, with its corpus next to it."""
    out = tmp_path_factory.mktemp("run")
    text = "abc abd abe. the cat sat.\n" * 40
    (out / "corpus.txt").write_text(text)
    charlstm.train(text=text, out_dir=out, hidden_size=8, num_layers=1, embedding_size=4, max_steps=6, eval_every=2,
                   batch_size=4, seq_length=16, progress=False, sample_length=60)
    return out


def test_report_shows_curves_learning_rate_samples_and_novelty(run_dir):
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [2, 4, 6]
    page = render_report(run_dir)
    assert_self_contained(page)
    assert page.count("<svg") == 4 and page.count("<polyline") == 2 + 2 + 1 + 4
    assert "Bits per character against wall time" in page and "Learning rate" in page
    assert page.count('<section class="sample">') == 3
    for r in records:
        assert html.escape(r["sample"]) in page
    assert page.count("longest copied span:") == 3 and "10-grams" in page
    assert "1 × 8 lstm, embedding 4" in page and "best validation" in page
    assert "<h1>charlstm: the run in " in page
    plain = render_report(run_dir, corpus=False)
    assert plain.count("<svg") == 3 and "longest copied span" not in plain


def test_report_command_and_bad_run_dirs(run_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["report", str(run_dir), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").read_text().count("<svg") == 4
    r = runner.invoke(main, ["report", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 1 and "not a directory" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 1 and "metrics.jsonl: no such file" in r.output


def test_report_of_a_run_without_validation_checkpoint_or_samples(tmp_path):
    lines = [{"step": 10, "epoch": 0.5, "elapsed_s": 30, "train_loss": 2.0, "val_nats": None, "val_bpc": None,
              "chars_per_s": 100.0, "lr": 0.002, "sample": ""},
             {"event": "skipped_nonfinite_batch", "step": 11, "lr_scale": 0.5},
             {"step": 20, "epoch": 1.0, "elapsed_s": 60, "train_loss": 1.5, "val_nats": None, "val_bpc": None,
              "chars_per_s": 100.0, "lr": 0.001, "sample": "<tag> & more"}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "corpus.txt").write_text("some <tag> & more text\n")
    page = render_report(tmp_path, title="t")
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20]
    assert page.count("<svg") == 4 and "&lt;tag&gt; &amp; more" in page and "(no sample)" in page
    assert "best validation" not in page and "model" not in page.split("<table")[1].split("</table>")[0]
    assert "12 characters (corpus line 1)" in page            # "<tag> & more" is copied whole
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(CharlstmError, match="line 1 is not valid JSON"):
        read_metrics(tmp_path)


def test_line_chart_places_points_on_the_axes():
    svg = line_chart([("a", [0, 10], [1.0, 2.0]), ("b", [0, 10], [None, 1.5])], "step", "bpc",
                     width=200, height=100)
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 2
    assert "<title>b: 1.5 at step 10</title>" in svg
    assert "No bpc" in line_chart([("a", [1], [None])], "step", "bpc")


@needs_chromium
def test_report_in_chromium(run_dir, tmp_path):
    (tmp_path / "report.html").write_text(render_report(run_dir), encoding="utf-8")
    url = (tmp_path / "report.html").as_uri()
    dom = chromium(url, "--dump-dom")
    assert dom.count("<svg") == 4 and dom.count('class="sample"') == 3
    shot = tmp_path / "report.png"
    chromium(url, f"--screenshot={shot}", "--window-size=1300,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000


def test_the_page_opens_on_a_unit_whose_colours_can_be_read():
    """A cell state stuck near its largest value (a counter grown to 547) ranks first but would be
    one colour from end to end: the page opens on the next ranked unit that spans its scale."""
    from types import SimpleNamespace
    from charlstm.analysis.viz import colour_spread, start_unit
    N = 400
    rng = np.random.default_rng(0)
    slab = 540 + rng.random(N) * 7                     # c of unit 0: 540 .. 547 all along
    wave = np.sin(np.arange(N) / 10)                   # h of unit 1: the whole [-1, 1]
    values = {"c": np.zeros((1, N, 2)), "h": np.zeros((1, N, 2))}
    values["c"][0, :, 0] = slab
    values["h"][0, :, 1] = wave
    trace = SimpleNamespace(values=lambda q: values[q])
    ranked = [SimpleNamespace(layer=0, unit=0, quantity="c"), SimpleNamespace(layer=0, unit=1, quantity="h")]
    assert colour_spread(trace, 0, 0, "c") < 0.02 and colour_spread(trace, 0, 1, "h") > 1.5
    assert start_unit(trace, ranked) is ranked[1]
    assert start_unit(trace, ranked[:1]) is ranked[0]            # nothing readable: the best ranked
    assert start_unit(trace, []) is None
