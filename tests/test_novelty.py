"""The copying check (charlstm/novelty.py) against brute force, and the `novelty` command."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm.cli import main
from charlstm.errors import CharlstmError
from charlstm.analysis.novelty import BASE, CorpusIndex, ngram_hashes, novelty, text_ids
from charlstm.data.vocab import build_vocab


def brute_force(corpus: str, samples: list[str], ns):
    copied = [[sum(s[p:p + n] in corpus for p in range(len(s) - n + 1)) for n in ns] for s in samples]
    longest = []
    for s in samples:
        best = 0
        for p in range(len(s)):
            while p + best < len(s) and s[p:p + best + 1] in corpus:
                best += 1
        longest.append(best)
    return copied, longest


def as_text(ids) -> str:
    return "".join(chr(ord("a") + int(k)) for k in ids)


@pytest.mark.parametrize("seed", range(6))
def test_index_agrees_with_brute_force_on_random_corpora(seed):
    rng = np.random.default_rng(seed)
    for trial in range(40):
        alphabet = int(rng.integers(2, 4))                # few letters, so that copies happen by chance
        corpus = rng.integers(0, alphabet, int(rng.integers(1, 200)))
        samples = [rng.integers(0, alphabet, int(rng.integers(0, 40))) for _ in range(int(rng.integers(1, 4)))]
        for s in samples:                                 # and plant a longer copy in some
            if len(s) > 4 and len(corpus) > 8 and rng.random() < 0.7:
                start = int(rng.integers(0, len(corpus) - 4))
                piece = corpus[start:start + int(rng.integers(4, len(s) + 1))]
                at = int(rng.integers(0, len(s) - len(piece) + 1))
                s[at:at + len(piece)] = piece
        ns = (1, 2, 3, 5, 8)
        index = CorpusIndex(corpus, block=int(rng.integers(1, 50)), workers=int(rng.integers(1, 3)))
        # max_pairs 0 or 3: too many occurrences to extend them all, so the search goes on by passes
        result = novelty(index, samples, ns=ns, each=True, max_pairs=int(rng.choice([0, 3, 1000])))
        c, s_texts = as_text(corpus), [as_text(s) for s in samples]
        copied, longest = brute_force(c, s_texts, ns)
        assert result.copied.tolist() == copied
        assert result.total.tolist() == [[max(0, len(s) - n + 1) for n in ns] for s in samples]
        assert [0 if x is None else x.length for x in result.longest_each] == longest
        assert (0 if result.longest is None else result.longest.length) == max(longest)
        for span in [result.longest] + result.longest_each:
            if span is not None:                         # the span is copied, and found where it first occurs
                piece = s_texts[span.sample][span.offset:span.offset + span.length]
                assert len(piece) == span.length and c.find(piece) == span.corpus_offset
        alone = novelty(index, samples, ns=ns, max_pairs=int(rng.choice([0, 1000])))   # overall only
        assert alone.longest_each == [] and (alone.longest is None) == (result.longest is None)
        assert alone.longest is None or alone.longest.length == result.longest.length


def test_hashes_are_the_polynomial_modulo_2_to_the_64():
    x = np.array([5, 0, 7, 1114111, 3, 3], dtype=np.uint32)
    for n in (1, 3, 6):
        expected = [sum(int(x[k + t]) * pow(BASE, t, 1 << 64) for t in range(n)) % (1 << 64)
                    for k in range(len(x) - n + 1)]
        assert ngram_hashes(x, n).tolist() == expected
    assert len(ngram_hashes(x, 7)) == 0


def test_a_hash_match_that_is_not_a_copy_does_not_count():
    index = CorpusIndex(np.array([1, 2, 3, 4], dtype=np.int64))
    queries = [np.array([1, 2, 9])]
    owners = np.array([[0, 0], [0, 1]])
    # pretend both 2-grams of the query hashed like corpus positions 0 and 1: only the first is real
    checked = index.verified(queries, owners, np.array([0, 1]), 2)
    assert checked.tolist() == [0, -1]


def test_text_index_reports_the_copied_text_and_its_line():
    corpus = "first line\nsecond line with ünïcode text\nthird\n"
    index = CorpusIndex.from_text(corpus, block=7)
    result = novelty(index, ["zzz with ünïcode tzz", "qqqq"], ns=(3, 5))
    span = result.longest
    assert (span.text, span.sample, span.offset, span.corpus_line) == (" with ünïcode t", 0, 3, 2)
    assert corpus[span.corpus_offset:].startswith(span.text)
    assert result.share(3, sample=1) == 0.0 and result.share(5) == 11 / 16
    assert novelty(index, ["ab"], ns=(3,)).share(3) is None     # no sample is that long
    assert result.to_dict()["longest"]["length"] == 15
    assert text_ids("a\U0001F600").tolist() == [97, 0x1F600]
    with pytest.raises(CharlstmError):
        CorpusIndex(np.zeros(0, dtype=np.int64))
    with pytest.raises(CharlstmError):
        novelty(index, ["abc"], ns=(0,))


def test_novelty_command(tmp_path):
    text = "the cat sat on the mat. " * 30
    model = charlstm.Model.create(build_vocab(text), hidden_size=8, num_layers=1, seed=0)
    model.save(tmp_path / "m.npz")
    (tmp_path / "corpus.txt").write_text(text)
    runner = CliRunner()
    args = ["novelty", str(tmp_path / "m.npz"), str(tmp_path / "corpus.txt"), "--n-samples", "3", "--length", "60"]
    r = runner.invoke(main, args + ["--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ns"] == [10, 20, 30, 40, 50] and out["total"]["10"] == 3 * 51
    assert all(0 <= v <= 1 for v in out["share"].values())
    assert out["longest"]["length"] >= 1 and out["longest"]["text"] in text
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "10-grams found in the corpus" in r.output and "longest copied span" in r.output
    r = runner.invoke(main, args[:3] + ["--n-samples", "0"])
    assert r.exit_code == 1 and "at least 1" in r.output
