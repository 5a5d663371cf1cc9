"""Is the model generating or copying? Which sampled n-grams occur verbatim in the training corpus.

Every n-gram is named by a polynomial rolling hash modulo 2^64,

    hash(x[k:k+n]) = sum_t x[k+t] B^t        (B odd, so it has an inverse modulo 2^64)

computed for all k at once from one prefix sum: with Q[j] = sum_{m<j} x[m] B^m,
hash(x[k:k+n]) = (Q[k+n] - Q[k]) B^-k. numpy's uint64 arithmetic wraps, which is exactly the
modulo. So one pass over the corpus (a cumulative sum, a subtraction and a product) names every
n-gram of it, in fixed-size blocks (run on several threads) so memory stays bounded whatever the
corpus size.

A corpus of 100 MB has 10^8 n-grams per length, but a batch of samples only ~10^4, so the sampled
n-grams are the side that gets indexed: their hashes are sorted (for np.searchsorted) and a
2^20-entry table of their top bits filters the corpus's hashes before any search. Longer lengths
are hashed only where the shortest one matched (a sampled 50-gram can only occur where its first
10 symbols do). Every reported copy is checked symbol by symbol, so a hash collision never counts.

The longest copied span comes from seed and extend: every corpus occurrence of the longest copied
n-grams is extended symbol by symbol, which gives the exact answer in the same single pass (see
_longest for what happens when there are too many occurrences to extend).

Symbols are whatever integer ids are given; `text_ids` gives the code points of a text, so for
text the n-gram lengths count code points. Over a data directory (CorpusIndex.from_data_dir) the
ids are its vocabulary's, memory-mapped, and n-gram lengths count its symbols. scripts/bench_novelty.py times a 100 MB corpus.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from charlstm.data.datadir import is_data_dir, open_data_dir
from charlstm.data.streams import release_pages
from charlstm.data.text import read_text
from charlstm.data.vocab import Vocab, split_symbols
from charlstm.errors import CharlstmError
from charlstm.interrupts import checkpoint
from charlstm.validate import printable

DEFAULT_NS = (10, 20, 30, 40, 50)
BASE = 0x9E3779B97F4A7C15                  # odd, and its bits are well mixed
_MOD = 1 << 64
_FILTER_BITS = 20                          # the table of sampled hashes' top bits: 1 MB
_TAKE = 1 << 10                            # places of a memory map read at once: each fault maps up to 64 KB around it


def text_ids(text: str) -> np.ndarray:
    """The code points of a text as a uint32 array (fast even for 100 MB)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class _Powers:
    """B^j and B^-j (mod 2^64) for j = 0, 1, ..., grown on demand."""

    def __init__(self):
        self.pos = np.ones(1, dtype=np.uint64)
        self.neg = np.ones(1, dtype=np.uint64)

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if length > len(self.pos):
            n = max(length, 2 * len(self.pos))
            self.pos = self._geometric(BASE, n)
            self.neg = self._geometric(pow(BASE, -1, _MOD), n)
        return self.pos[:length], self.neg[:length]

    @staticmethod
    def _geometric(ratio: int, n: int) -> np.ndarray:
        out = np.full(n, ratio, dtype=np.uint64)
        out[0] = 1
        return np.cumprod(out, out=out)           # wraps modulo 2^64, as wanted


def _prefix(x: np.ndarray, powers: _Powers) -> np.ndarray:
    """Q (len(x) + 1,) with Q[j] = sum_{m<j} x[m] B^m mod 2^64."""
    pos, _ = powers.get(len(x))
    q = np.empty(len(x) + 1, dtype=np.uint64)
    q[0] = 0
    np.multiply(x, pos, out=q[1:], dtype=np.uint64, casting="unsafe")
    np.cumsum(q[1:], out=q[1:])
    return q


def _window_hashes(q: np.ndarray, n: int, count: int, powers: _Powers) -> np.ndarray:
    """Hashes of the `count` windows of length n starting at 0, 1, ... of the prefix sums q."""
    _, neg = powers.get(count)
    h = q[n:n + count] - q[:count]
    h *= neg
    return h


def ngram_hashes(x: np.ndarray, n: int, powers: _Powers | None = None) -> np.ndarray:
    """The hash of every n-gram of x: (max(0, len(x) - n + 1),) uint64."""
    count = len(x) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    powers = powers or _Powers()
    return _window_hashes(_prefix(np.asarray(x), powers), n, count, powers)


def _expand(every, owners: np.ndarray, inverse: np.ndarray, cap: int):
    """(slot, corpus position) hits -> (query, offset, corpus position) rows, one per owner of
    the slot's n-gram; None when unknown or more than cap."""
    if every is None or cap <= 0:
        return None
    slots, places = every
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(int(inverse.max(initial=-1)) + 2))
    per_hit = (starts[slots + 1] - starts[slots]) if len(slots) else np.zeros(0, np.int64)
    total = int(per_hit.sum())
    if total > cap:
        return None
    hit_of_row = np.repeat(np.arange(len(slots)), per_hit)
    within = np.arange(total) - np.repeat(np.cumsum(per_hit) - per_hit, per_hit)
    rows = order[starts[slots[hit_of_row]] + within]
    return np.column_stack([owners[rows], places[hit_of_row]]).astype(np.int64)


def _in_order(pool, fn, items, window: int):
    """(item, fn(item)) in order, with at most `window` calls in flight on the pool."""
    pending = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


class CorpusIndex:
    """A corpus's symbol ids, ready to answer where n-grams occur in it.

    ids may be a memory map of any size (a data directory's ids.npy): it is read a block at a
    time and its pages handed back as the pass goes, so memory stays bounded. vocab: what the ids
    mean, when they are a vocabulary's ids (samples are then split into its symbols, and copied
    spans shown as text)."""

    def __init__(self, ids: np.ndarray, block: int = 1 << 20, is_text: bool = False,
                 workers: int | None = None, vocab: Vocab | None = None):
        self._mapped = ids                 # a memory map keeps its pages' owner; see release_pages
        ids = np.ascontiguousarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise CharlstmError("a corpus index needs a 1-d array of integer ids")
        if len(ids) == 0:
            raise CharlstmError("the corpus is empty")
        self.ids = ids
        self.block = block
        self.is_text = is_text     # ids are code points: spans can be shown as text
        self.vocab = vocab
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._powers = _Powers()   # B^j and B^-j, kept between passes

    @classmethod
    def from_text(cls, text: str, **options) -> "CorpusIndex":
        return cls(text_ids(text), is_text=True, **options)

    @classmethod
    def from_data_dir(cls, data, **options) -> "CorpusIndex":
        """An index over a data directory's ids (see data/datadir.py), memory-mapped."""
        return cls(data.ids, vocab=data.vocab, **options)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """ids[positions]. For a memory map, a few thousand places at a time with its pages handed
        back after each: reading all over a corpus of gigabytes would otherwise make as much of
        it resident as was touched."""
        if getattr(self._mapped, "_mmap", None) is None:
            return self.ids[positions]
        positions = np.asarray(positions)
        out = np.empty(positions.shape, dtype=self.ids.dtype)
        flat, into = positions.reshape(-1), out.reshape(-1)
        for start in range(0, len(flat), _TAKE):
            into[start:start + _TAKE] = self.ids[flat[start:start + _TAKE]]
            release_pages(self._mapped)
        return out

    def ids_of(self, sample) -> np.ndarray:
        """A sample (text, or ids already) as ids of this index: code points for a text index,
        the vocabulary's ids otherwise (a symbol it lacks gets an id the corpus never holds)."""
        if not isinstance(sample, str):
            return np.asarray(sample)
        if self.vocab is None:
            return text_ids(sample)
        unseen = len(self.vocab)
        id_of = self.vocab.id_of
        return np.array([id_of(s, unseen) for s in split_symbols(sample, self.vocab.unit)], dtype=np.int64)

    def show(self, ids) -> str | None:
        """ids of this index as text, where the index knows how."""
        if self.is_text:
            return "".join(map(chr, np.asarray(ids).tolist()))
        if self.vocab is not None:
            symbols = self.vocab.symbols
            return "".join(symbols[k] if k < len(symbols) else "\ufffd" for k in np.asarray(ids).tolist())
        return None

    def __len__(self) -> int:
        return len(self.ids)

    def find_hashes(self, wanted: dict[int, np.ndarray], nested: bool = False,
                    keep_every: int = 0) -> tuple[dict, dict]:
        """Look up hashed n-grams in the corpus: one pass for all lengths together.

        wanted: {n: sorted unique hashes}. Returns (first, every): first[n][j] is the first corpus
        position whose n-gram hashes to wanted[n][j], or -1; every[n] is (j, position) of every
        occurrence when there are at most keep_every of them, else None.

        nested: the wanted n-grams of each length start with wanted n-grams of the length before
        (true of all the n-grams of a set of samples), so an n-gram can only occur where the
        shorter one does, and lengths after the first are hashed only at those places.
        """
        wanted = {n: h for n, h in sorted(wanted.items()) if len(h) and n <= len(self.ids)}
        first = {n: np.full(len(h), -1, dtype=np.int64) for n, h in wanted.items()}
        every = {n: ([], []) if keep_every else None for n in wanted}
        if not wanted:
            return first, every
        shift = np.uint64(64 - _FILTER_BITS)
        filters = {}
        for n, h in wanted.items():
            table = np.zeros(1 << _FILTER_BITS, dtype=bool)
            table[(h >> shift).astype(np.intp)] = True
            filters[n] = table
        n_max, M = max(wanted), len(self.ids)
        self._powers.get(self.block + n_max)        # grown here, read-only in the threads

        def scan(start: int) -> dict:
            """One block: per n, (slots in wanted[n], local places) of every hit, in corpus order."""
            q = _prefix(self.ids[start:start + self.block + n_max - 1], self._powers)
            _, neg = self._powers.get(self.block)
            window_buffer = np.empty(self.block, dtype=np.uint64)    # reused for every length
            top_buffer = np.empty(self.block, dtype=np.uint64)
            hits, before = {}, None
            for n, h in wanted.items():
                count = min(self.block, M - start - n + 1)
                if count <= 0:
                    before = np.zeros(0, dtype=np.int64)
                    continue
                if nested and before is not None:          # only where the shorter n-gram is
                    candidates = before[before < count]
                    hc = (q[candidates + n] - q[candidates]) * neg[candidates]
                else:
                    window, top = window_buffer[:count], top_buffer[:count]
                    np.subtract(q[n:n + count], q[:count], out=window)    # = _window_hashes, in place
                    np.multiply(window, neg[:count], out=window)
                    np.right_shift(window, shift, out=top)
                    candidates = np.flatnonzero(filters[n][top.view(np.int64)])
                    hc = window[candidates]
                slot = np.minimum(np.searchsorted(h, hc), len(h) - 1)
                hit = h[slot] == hc
                hits[n] = (slot[hit], candidates[hit])
                before = candidates[hit]
            return hits

        # numpy lets go of the GIL inside these array operations, so blocks run in parallel;
        # the results come back in block order, so the first occurrence wins. Only a few blocks
        # are in flight: a repetitive corpus can have a hit at every place of a block.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for start, hits in _in_order(pool, scan, range(0, M, self.block), 2 * self.workers):
                checkpoint()          # a corpus of gigabytes answers Ctrl-C within a few blocks
                if (start // self.block) % 16 == 15:
                    release_pages(self._mapped)
                for n, (slots, places) in hits.items():
                    unique, at = np.unique(slots, return_index=True)     # earliest in the block
                    new = first[n][unique] < 0
                    first[n][unique[new]] = start + places[at[new]]
                    kept = every[n]
                    if kept is not None and len(slots):
                        kept[0].append(slots)
                        kept[1].append(start + places)
                        if sum(len(x) for x in kept[0]) > keep_every:
                            every[n] = None
        for n, kept in every.items():
            if kept is not None:
                every[n] = (np.concatenate(kept[0]) if kept[0] else np.zeros(0, np.intp),
                            np.concatenate(kept[1]) if kept[1] else np.zeros(0, np.int64))
        return first, every

    def locate(self, queries: list[np.ndarray], ns, masks: dict | None = None,
               keep_every: int = 0) -> tuple[dict, dict]:
        """Where the queries' n-grams occur. Returns (first, pairs):

        first[n]: one int64 array per query with the first corpus position of its n-gram starting
        at each offset, or -1 if it never occurs (each reported one checked symbol by symbol).
        pairs[n]: (P, 3) rows (query, offset, corpus position) for every occurrence of every
        n-gram looked up, when there are at most keep_every of them, else None.
        masks: optional {n: [bool array per query]} limiting which offsets to look up.
        """
        ns = sorted(set(int(n) for n in ns))
        if ns and ns[0] < 1:
            raise CharlstmError("n-gram lengths must be at least 1")
        per_n, wanted = {}, {}
        for n in ns:
            hashes, owners = [], []
            for k, x in enumerate(queries):
                h = ngram_hashes(x, n, self._powers)
                offsets = np.arange(len(h))
                if masks is not None and n in masks:
                    given = np.asarray(masks[n][k][:len(h)], dtype=bool)
                    keep = np.zeros(len(h), dtype=bool)
                    keep[:len(given)] = given
                    h, offsets = h[keep], offsets[keep]
                hashes.append(h)
                owners.append(np.stack([np.full(len(h), k), offsets], axis=1))
            hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
            owners = np.concatenate(owners) if owners else np.zeros((0, 2), np.int64)
            unique, inverse = np.unique(hashes, return_inverse=True)
            wanted[n] = unique
            per_n[n] = (owners, inverse.reshape(-1))
        found, every = self.find_hashes(wanted, nested=masks is None, keep_every=keep_every)
        first, pairs = {}, {}
        for n in ns:
            owners, inverse = per_n[n]
            positions = found[n][inverse] if n in found else np.full(len(owners), -1, np.int64)
            positions = self.verified(queries, owners, positions, n)
            out = [np.full(max(0, len(x) - n + 1), -1, dtype=np.int64) for x in queries]
            for (k, offset), p in zip(owners[positions >= 0], positions[positions >= 0]):
                out[k][offset] = p
            first[n] = out
            pairs[n] = _expand(every.get(n, (np.zeros(0, np.intp), np.zeros(0, np.int64))),
                               owners, inverse, keep_every)
        return first, pairs

    def verified(self, queries, owners, positions, n) -> np.ndarray:
        """positions, with -1 wherever the corpus's n symbols differ from the query's (a hash
        collision; astronomically rare, but a copy must be a copy)."""
        ok = np.flatnonzero(positions >= 0)
        if len(ok) == 0:
            return positions
        steps = np.arange(n)
        corpus = self.take(positions[ok][:, None] + steps)
        sampled = np.stack([queries[k][offset:offset + n] for k, offset in owners[ok]])
        positions = positions.copy()
        positions[ok[(corpus != sampled).any(axis=1)]] = -1
        return positions

    def line_of(self, offset: int) -> int | None:
        """1-based line number of a corpus position, for an index that knows its line feeds."""
        newline = 10 if self.is_text else None if self.vocab is None else self.vocab.id_of("\n")
        if newline is None:
            return None
        lines = 1
        for start in range(0, offset, 1 << 24):          # in blocks: the corpus may be a memory map
            lines += int(np.count_nonzero(self.ids[start:min(offset, start + (1 << 24))] == newline))
            release_pages(self._mapped)
        return lines


@dataclass
class CopiedSpan:
    """The longest stretch of a sample found verbatim in the corpus."""

    length: int
    sample: int               # which sample
    offset: int               # where in the sample
    corpus_offset: int        # where in the corpus (its first occurrence)
    corpus_line: int | None   # 1-based line of the corpus, for text
    text: str | None          # the copied text, for text

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Novelty:
    """How much of a set of samples occurs verbatim in a corpus, n-gram length by length."""

    ns: tuple[int, ...]
    copied: np.ndarray               # (samples, len(ns)) sampled n-grams found in the corpus
    total: np.ndarray                # (samples, len(ns)) sampled n-grams
    longest: CopiedSpan | None       # over all samples (None: no symbol of them occurs at all)
    longest_each: list = field(default_factory=list)   # per sample, when asked for

    def share(self, n: int, sample: int | None = None) -> float | None:
        """Share of the sampled n-grams found in the corpus (None when no sample is that long)."""
        k = self.ns.index(n)
        copied = self.copied[:, k] if sample is None else self.copied[sample, k]
        total = self.total[:, k] if sample is None else self.total[sample, k]
        total = int(np.sum(total))
        return None if total == 0 else int(np.sum(copied)) / total

    def to_dict(self) -> dict:
        return {"ns": list(self.ns),
                "share": {str(n): self.share(n) for n in self.ns},
                "copied": {str(n): int(self.copied[:, k].sum()) for k, n in enumerate(self.ns)},
                "total": {str(n): int(self.total[:, k].sum()) for k, n in enumerate(self.ns)},
                "longest": None if self.longest is None else self.longest.to_dict()}


def novelty(index: CorpusIndex, samples: list, ns=DEFAULT_NS, each: bool = False,
            max_pairs: int = 2_000_000) -> Novelty:
    """Which n-grams of the samples occur in the corpus, and the longest copied span.

    samples: id arrays (or strings, for an index built from text). each: also find the longest
    copied span of every sample on its own. max_pairs: how many (sample place, corpus place)
    pairs may be extended at once (see _longest).
    """
    samples = [index.ids_of(s) for s in samples]
    ns = tuple(sorted(set(int(n) for n in ns)))
    if not ns or ns[0] < 1:
        raise CharlstmError("give n-gram lengths of at least 1")
    first, pairs = index.locate(samples, ns, keep_every=max_pairs)
    copied = np.array([[int((first[n][k] >= 0).sum()) for n in ns] for k in range(len(samples))],
                      dtype=np.int64).reshape(len(samples), len(ns))
    total = np.array([[max(0, len(x) - n + 1) for n in ns] for x in samples],
                     dtype=np.int64).reshape(len(samples), len(ns))
    groups = [[k] for k in range(len(samples))] if each else [list(range(len(samples)))]
    spans = _longest(index, samples, groups, first, pairs, max_pairs)
    overall = spans[0] if not each else max((s for s in spans if s is not None),
                                            key=lambda s: s.length, default=None)
    return Novelty(ns=ns, copied=copied, total=total, longest=overall, longest_each=spans if each else [])


def _common_prefix(index: CorpusIndex, samples, rows: np.ndarray, known: int) -> np.ndarray:
    """For each row (sample, offset, corpus place) whose first `known` symbols match, how many
    symbols of the sample from that offset match the corpus from that place. One symbol per
    step for all rows of a batch at once; rows drop out at their first mismatch. Batches of a
    few thousand rows keep the pages of a memory-mapped corpus that they read few, and each
    batch hands them back when it is done."""
    ids = index.ids
    lengths = np.array([len(x) for x in samples], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(samples)
    out = np.full(len(rows), known, dtype=np.int64)
    for first in range(0, len(rows), _TAKE):
        batch = rows[first:first + _TAKE]
        s = base[batch[:, 0]] + batch[:, 1]
        end = base[batch[:, 0]] + lengths[batch[:, 0]]
        c = batch[:, 2]
        reach = out[first:first + _TAKE]                 # a view: the batch's answers
        alive = np.arange(len(batch))
        while len(alive):
            si, ci = s[alive] + reach[alive], c[alive] + reach[alive]
            inside = (si < end[alive]) & (ci < len(ids))
            alive, si, ci = alive[inside], si[inside], ci[inside]
            alive = alive[flat[si] == ids[ci]]
            reach[alive] += 1
        release_pages(index._mapped)
    return out


def _prefix_matches(index: CorpusIndex, samples, rows: np.ndarray, n: int) -> np.ndarray:
    """Whether each row's n sampled symbols equal the corpus's (False only for a hash collision)."""
    ok = np.ones(len(rows), dtype=bool)
    steps = np.arange(n)
    for start in range(0, len(rows), 1 << 16):                  # bounded memory: n x 65,536 at most
        part = rows[start:start + (1 << 16)]
        corpus = index.take(part[:, 2, None] + steps)
        sampled = np.stack([samples[k][offset:offset + n] for k, offset in part[:, :2]])
        ok[start:start + len(part)] = (corpus == sampled).all(axis=1)
    return ok


def _longest(index: CorpusIndex, samples, groups, first, pairs, max_pairs: int,
             greedy_rounds: int = 3) -> list:
    """The longest copied span of each group of samples.

    Seed and extend: a copied span of length >= n starts with a copied n-gram, so once the
    longest n-gram length with copies is known, extending every occurrence of those n-grams
    (all of them: `pairs`) symbol by symbol gives the exact answer without another pass.

    When there are too many occurrences to extend (more than max_pairs), or no n-gram of the
    first lookup was copied, the search goes on by passes: each group keeps lo, a copied length
    (`alive`: the first places of its copies), and hi, a length known not to be copied; a pass
    tests lo + 1 after extending from the first places (which usually lands on the answer) for
    `greedy_rounds` passes, then bisects. A pass looks only at the offsets alive at lo.
    """
    state = []
    for members in groups:
        longest_sample = max((len(samples[k]) for k in members), default=0)
        g = {"lo": 0, "hi": longest_sample + 1, "alive": None, "witness": None, "rounds": 0}
        for n in sorted(first):
            if n > longest_sample:
                break
            if not any((first[n][k] >= 0).any() for k in members):
                g["hi"] = n
                break
            g["lo"] = n
        state.append(g)

    def settle(g, members, first_at_lo, pairs_at_lo):
        """Copies of length g["lo"] were just found: extend them."""
        lo = g["lo"]
        if pairs_at_lo is not None:
            rows = pairs_at_lo[np.isin(pairs_at_lo[:, 0], members)]
            rows = rows[_prefix_matches(index, samples, rows, lo)]
            if len(rows):
                reach = _common_prefix(index, samples, rows, lo)
                best = rows[reach == reach.max()]
                k, offset, where = best[np.lexsort((best[:, 2], best[:, 1], best[:, 0]))[0]]
                g["lo"] = int(reach.max())
                g["hi"], g["witness"] = g["lo"] + 1, (int(k), int(offset), int(where))
                return
        g["alive"] = {k: first_at_lo[k] for k in members}
        for k, places in g["alive"].items():
            offsets = np.flatnonzero(places >= 0)
            if len(offsets) == 0:
                continue
            rows = np.column_stack([np.full(len(offsets), k), offsets, places[offsets]])
            reach = _common_prefix(index, samples, rows, lo)
            j = int(np.argmax(reach))
            if g["witness"] is None or reach[j] > g["lo"]:
                g["lo"], g["witness"] = int(reach[j]), (k, int(offsets[j]), int(places[offsets[j]]))

    for g, members in zip(state, groups):
        if g["lo"] > 0:
            settle(g, members, first[g["lo"]], pairs[g["lo"]])
    while True:
        asks = {}
        for i, g in enumerate(state):
            if g["hi"] - g["lo"] > 1:
                greedy = g["alive"] is not None and g["rounds"] < greedy_rounds
                asks[i] = g["lo"] + 1 if greedy else (g["lo"] + g["hi"]) // 2
        if not asks:
            break
        masks = {}
        for i, t in asks.items():
            g = state[i]
            per_query = masks.setdefault(t, [np.zeros(0, bool) for _ in samples])
            for k in groups[i]:
                count = max(0, len(samples[k]) - t + 1)
                per_query[k] = np.ones(count, bool) if g["alive"] is None else g["alive"][k][:count] >= 0
        found, found_pairs = index.locate(samples, masks.keys(), masks=masks, keep_every=max_pairs)
        for i, t in asks.items():
            g = state[i]
            g["rounds"] += 1
            if any((found[t][k] >= 0).any() for k in groups[i]):
                g["lo"], g["witness"] = t, None
                settle(g, groups[i], found[t], found_pairs[t])
            else:
                g["hi"] = t

    spans = []
    for g in state:
        if g["witness"] is None:
            spans.append(None)
            continue
        (k, offset, where), length = g["witness"], g["lo"]
        text = index.show(samples[k][offset:offset + length])
        spans.append(CopiedSpan(length=length, sample=k, offset=offset, corpus_offset=where,
                                corpus_line=index.line_of(where), text=text))
    return spans


def corpus_index(path, encoding_errors: str = "strict") -> tuple[CorpusIndex, str]:
    """(the index of a corpus to check samples against, what its n-grams count): a data directory
    of any size, memory-mapped ("symbols"), or a text file read whole, up to 512 MiB
    ("characters")."""
    if is_data_dir(path):
        return CorpusIndex.from_data_dir(open_data_dir(path)), "symbols"
    return CorpusIndex.from_text(read_text(path, errors=encoding_errors, limit_option=None)), "characters"


@dataclass
class NoveltyReport:
    """What `novelty` found for samples of a model, with how they were drawn and the corpus."""

    samples: int
    length: int
    temperature: float
    corpus: str
    corpus_size: int          # its characters, or symbols for a data directory (`unit`)
    unit: str
    result: Novelty

    def to_dict(self) -> dict:
        return {"samples": self.samples, "length": self.length, "temperature": self.temperature,
                "corpus_characters": self.corpus_size, "corpus_unit": self.unit, **self.result.to_dict()}

    def lines(self) -> list[str]:
        """The report as lines: the share of each n-gram length found, and the longest copy."""
        result = self.result
        lines = [f"{self.samples} samples of {self.length} symbols (temperature {self.temperature:g}) against "
                 f"{self.corpus} ({self.corpus_size:,} {self.unit}):"]
        for k, n in enumerate(result.ns):
            share = result.share(n)
            copied, total = int(result.copied[:, k].sum()), int(result.total[:, k].sum())
            shown = "   –  " if share is None else f"{100 * share:5.1f} %"
            lines.append(f"  {n:>3}-grams found in the corpus: {shown}  ({copied:,} of {total:,})")
        span = result.longest
        if span is None:
            return [*lines, "  no symbol of the samples occurs in the corpus"]
        at = f"{'character' if self.unit == 'characters' else 'symbol'} {span.corpus_offset:,}"
        where = f"corpus {at}" if span.corpus_line is None else f"corpus line {span.corpus_line} ({at})"
        return [*lines, f"  longest copied span: {span.length} {self.unit}, sample {span.sample + 1} at "
                        f"{span.offset}, {where}:", f"    {printable(span.text)}"]


__all__ = ["DEFAULT_NS", "text_ids", "ngram_hashes", "CorpusIndex", "CopiedSpan", "Novelty", "novelty",
           "corpus_index", "NoveltyReport"]
