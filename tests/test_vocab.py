"""charlstm.vocab: grapheme and code-point symbols, exact round trips of hard Unicode, the ASCII
fast path, rare symbols, stable ordering, unknown symbols and one-hot vectors."""

from collections import Counter

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.data.vocab import UNK, Vocab, build_vocab, count_symbols, split_symbols

THUMBS_MEDIUM = "\U0001F44D\U0001F3FD"                      # thumbs up + skin tone modifier
FLAG_FR, FLAG_DE = "\U0001F1EB\U0001F1F7", "\U0001F1E9\U0001F1EA"   # regional indicator pairs
FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"  # ZWJ sequence
E_ACUTE = "e\u0301"                                          # e + combining acute accent
FRAKTUR = "\U0001D518\U0001D52B\U0001D526"                   # non-BMP letters
GOTHIC = "\U00010348"

# (text, expected grapheme symbols)
CASES = [
    (THUMBS_MEDIUM, [THUMBS_MEDIUM]),
    (FLAG_FR + FLAG_DE, [FLAG_FR, FLAG_DE]),
    (FAMILY, [FAMILY]),
    ("caf" + E_ACUTE, ["c", "a", "f", E_ACUTE]),
    ("a\r\nb", ["a", "\r\n", "b"]),
    (FRAKTUR + GOTHIC, ["\U0001D518", "\U0001D52B", "\U0001D526", GOTHIC]),
    ("\u0915\u094d\u0937", ["\u0915\u094d\u0937"]),              # Devanagari conjunct
]


@pytest.mark.parametrize("text,symbols", CASES)
def test_grapheme_split(text, symbols):
    assert split_symbols(text, "grapheme") == symbols
    assert split_symbols(text, "codepoint") == list(text)


def test_combining_mark_is_one_symbol_in_grapheme_mode_two_in_codepoint_mode():
    g = build_vocab(E_ACUTE, unit="grapheme")
    c = build_vocab(E_ACUTE, unit="codepoint")
    assert g.symbols == (E_ACUTE,) and len(g.encode(E_ACUTE)) == 1
    assert c.symbols == ("e", "\u0301") and len(c.encode(E_ACUTE)) == 2
    assert c.decode(c.encode(E_ACUTE)) == g.decode(g.encode(E_ACUTE)) == E_ACUTE


def mixed_text():
    parts = [THUMBS_MEDIUM, " hi ", FLAG_FR, FLAG_DE, "\r\n", FAMILY, " caf", E_ACUTE, "\n",
             FRAKTUR, GOTHIC, "\r\n", "\U0001F44B\U0001F3FF", "\U0001F44B", "\t\u00e9\u0301x\r"]
    return "".join(parts) * 3


@pytest.mark.parametrize("unit", ["grapheme", "codepoint"])
def test_round_trip_mixed_unicode(unit):
    text = mixed_text()
    vocab = build_vocab(text, unit=unit)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert len(ids) == len(split_symbols(text, unit))
    assert ids.dtype == np.uint8
    if unit == "grapheme":
        for s in (THUMBS_MEDIUM, FLAG_FR, FLAG_DE, FAMILY, E_ACUTE, "\r\n", "\U0001F44B\U0001F3FF"):
            assert s in vocab.symbols
        assert "\u200d" not in vocab.symbols and "\U0001F3FD" not in vocab.symbols
    else:
        assert all(len(s) == 1 for s in vocab.symbols)
    # every symbol decodes to itself, and encoding any substring made of whole symbols works
    for k, s in enumerate(vocab.symbols):
        assert vocab.decode([k]) == s
        assert list(vocab.encode(s)) == [k]


def test_crlf_is_one_grapheme_and_two_code_points():
    text = "ab\r\ncd\r\n"
    g = build_vocab(text)
    assert len(g.encode(text)) == 6 and "\r\n" in g.symbols
    assert g.decode(g.encode(text)) == text
    c = build_vocab(text, unit="codepoint")
    assert len(c.encode(text)) == 8
    assert c.decode(c.encode(text)) == text


def test_lone_cr_and_lf_and_crlf_are_three_symbols():
    text = "a\rb\nc\r\nd"
    vocab = build_vocab(text)
    assert {"\r", "\n", "\r\n"} <= set(vocab.symbols)
    assert vocab.decode(vocab.encode(text)) == text


def general_path_ids(vocab, text):
    """What encoding means, without the fast path: the id of each split symbol."""
    return np.array([vocab.symbols.index(s) for s in split_symbols(text, vocab.unit)], dtype=np.int64)


@pytest.mark.parametrize("unit", ["grapheme", "codepoint"])
def test_ascii_fast_path_gives_the_same_ids(unit):
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefXYZ 0123.,;:!?\n\t~\x7f"))
    text = "".join(rng.choice(alphabet, size=3000))
    vocab = build_vocab(text + "\u00e9\U0001F600", unit=unit)     # a vocabulary with non-ASCII symbols too
    fast = vocab.encode(text)
    np.testing.assert_array_equal(fast, general_path_ids(vocab, text))
    # the same text through the general path (forced by one non-ASCII symbol at the end)
    slow = vocab.encode(text + "\u00e9")
    np.testing.assert_array_equal(fast, slow[:-1])
    assert fast.dtype == slow.dtype
    assert count_symbols(text, unit) == Counter(text)


def test_ascii_with_cr_in_grapheme_mode_takes_the_general_path():
    text = "line one\r\nline two\r\n"
    vocab = build_vocab(text)
    np.testing.assert_array_equal(vocab.encode(text), general_path_ids(vocab, text))
    assert count_symbols(text)["\r\n"] == 2 and "\r" not in count_symbols(text)
    cp = build_vocab(text, unit="codepoint")
    np.testing.assert_array_equal(cp.encode(text), general_path_ids(cp, text))


def test_min_count_maps_rare_symbols_to_unk():
    text = "aaaa bbbb cccc z q" + THUMBS_MEDIUM
    vocab = build_vocab(text, min_count=2)
    assert vocab.symbols[-1] == UNK and vocab.unk == len(vocab) - 1
    assert set(vocab.symbols) == {"a", "b", "c", " ", UNK}
    ids = vocab.encode(text, unknown="unk")
    assert vocab.decode(ids) == "aaaa bbbb cccc " + UNK + " " + UNK + UNK
    with pytest.raises(CharlstmError, match="'z'"):
        vocab.encode(text)                                   # strict: the rare symbol is an error
    # the ASCII fast path maps unknown symbols the same way
    np.testing.assert_array_equal(vocab.encode("azq", unknown="unk"), [vocab.symbols.index("a"), vocab.unk, vocab.unk])


def test_replacement_character_in_the_text_is_the_unk_symbol():
    vocab = build_vocab("ab" + UNK + "ab")
    assert vocab.unk is not None and vocab.symbols[vocab.unk] == UNK
    assert vocab.symbols.count(UNK) == 1
    assert vocab.decode(vocab.encode("b" + UNK)) == "b" + UNK


def test_no_unk_when_nothing_is_rare():
    vocab = build_vocab("abcabc", min_count=2)
    assert vocab.unk is None and UNK not in vocab.symbols
    with pytest.raises(CharlstmError):
        vocab.encode("abd", unknown="unk")   # no unknown symbol to map to: still an error


def test_stable_sorted_ordering():
    text = mixed_text() + "zyx ABC"
    vocab = build_vocab(text)
    assert list(vocab.symbols) == sorted(vocab.symbols)
    symbols = split_symbols(text)
    shuffled = "".join(np.random.default_rng(1).permutation(np.array(symbols, dtype=object)))
    assert build_vocab(shuffled).symbols == vocab.symbols
    assert build_vocab(text).symbols == vocab.symbols


def test_unknown_symbol_errors_name_it():
    vocab = build_vocab("hello world")
    with pytest.raises(CharlstmError, match="'Z'.*U\\+005A"):
        vocab.encode("hello Zorld")
    with pytest.raises(CharlstmError, match="U\\+1F44D"):
        vocab.encode("hello " + THUMBS_MEDIUM)
    with pytest.raises(CharlstmError, match="\\\\t"):         # non-printable shown escaped
        vocab.encode("hello\tworld")
    with pytest.raises(CharlstmError):
        build_vocab("hello").encode("hell" + E_ACUTE)   # "e" is known, but "e" + accent is another symbol


def test_large_vocabulary_uses_uint16():
    text = "".join(chr(0x4E00 + k) for k in range(300))
    vocab = build_vocab(text)
    ids = vocab.encode(text)
    assert len(vocab) == 300 and ids.dtype == np.uint16
    assert vocab.decode(ids) == text
    np.testing.assert_array_equal(ids, np.arange(300))


def test_dict_round_trip_and_validation():
    vocab = build_vocab("ab" + THUMBS_MEDIUM + "q", min_count=1)
    again = Vocab.from_dict(vocab.to_dict())
    assert again == vocab
    rare = build_vocab("aab", min_count=2)
    assert Vocab.from_dict(rare.to_dict()) == rare and Vocab.from_dict(rare.to_dict()).unk == rare.unk
    with pytest.raises(CharlstmError):
        Vocab(("a", "b", "a"))
    with pytest.raises(CharlstmError):
        Vocab(("a", "b"), unk=1)                 # the unk id must point at U+FFFD
    with pytest.raises(CharlstmError):
        Vocab(("a",), unit="word")


def test_build_and_encode_ascii_across_byte_blocks(monkeypatch):
    """The ASCII path counts the bytes a block of pairs at a time: with blocks of 500 pairs, a
    text of 3001 bytes gives the counts and ids of one pass, the last symbol on its own."""
    import charlstm.data.vocab as vocab_module
    monkeypatch.setattr(vocab_module, "PAIRS_AT_ONCE", 500)
    rng = np.random.default_rng(1)
    text = "".join(rng.choice(np.array(list("abcdef XYZ.\n")), size=3000)) + "~"
    vocab, ids = vocab_module.build_and_encode(text)
    assert vocab.symbols == build_vocab(text).symbols
    np.testing.assert_array_equal(ids, general_path_ids(vocab, text))
    assert ids.dtype == np.uint8
    assert vocab_module.count_symbols(text) == Counter(text)


def test_wide_ids_of_ascii_text_across_byte_blocks(monkeypatch):
    """A vocabulary of more than 256 symbols takes ASCII bytes through a uint16 table, a block at a
    time; the ids are those of the general path, writable, and an unknown byte is named."""
    import charlstm.data.vocab as vocab_module
    monkeypatch.setattr(vocab_module, "BYTES_AT_ONCE", 1000)
    vocab = build_vocab("".join(chr(c) for c in range(32, 127)) + "".join(chr(0x4E00 + k) for k in range(300)))
    rng = np.random.default_rng(2)
    text = "".join(rng.choice(np.array(list("abcdef XYZ.~")), size=3001))
    ids = vocab.encode(text)
    assert ids.dtype == np.uint16 and ids.flags.writeable
    np.testing.assert_array_equal(ids, general_path_ids(vocab, text))
    with pytest.raises(CharlstmError, match="U\\+0009"):
        vocab.encode(text + "\t")
