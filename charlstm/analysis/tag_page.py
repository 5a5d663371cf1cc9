"""A tagged text shown three ways: as lines of `class<TAB>text` (one per span of one class), in a
terminal's colours, and as one self-contained HTML page (no network; pages/tags.html and .css).

A span is a run of characters with one class. Its text is written with data/labelled.py's
escapes (\\t \\n \\r \\\\), so that every span is one line whatever it holds and a program can read
the lines back. Colours go by the class's place in the tagger's labels, one of eight, cycling:
for the Python tagger, names, keywords, numbers, strings, comments and operators each have one;
"other" (spaces between tokens, line ends) and "indent" keep the terminal's own colour.
"""

from __future__ import annotations

import html

from charlstm.analysis.pages import fill, read_page_file
from charlstm.data.labelled import escape

# SGR codes by the class's place (mod 8): other, indent, name, keyword, number, string, comment, operator
ANSI_COLOURS = ("", "", "36", "1;35", "33", "32", "90", "31")
RESET = "\x1b[0m"


def spans_of(text: str, tags: list[str]) -> list[tuple[str, str]]:
    """(class, text) of each run of characters with one class, in order; tags: one per character."""
    if len(tags) != len(text):
        raise ValueError(f"{len(tags)} tags for {len(text)} characters")
    spans, start = [], 0
    for i in range(1, len(text) + 1):
        if i == len(text) or tags[i] != tags[start]:
            spans.append((tags[start], text[start:i]))
            start = i
    return spans


def span_lines(spans) -> list[str]:
    """One `class<TAB>text` line per span, the text escaped (see the module docstring)."""
    return [f"{tag}\t{escape(piece)}" for tag, piece in spans]


def ansi_text(spans, names) -> str:
    """The text with each span in its class's terminal colour (names: the tagger's labels, whose
    order picks the colours). Control characters other than tab and line feed are escaped, so the
    text cannot act on the terminal."""
    place = {name: k for k, name in enumerate(names)}
    out = []
    for tag, piece in spans:
        piece = "".join(c if c.isprintable() or c in "\t\n" else c.encode("unicode_escape").decode("ascii")
                        for c in piece)
        colour = ANSI_COLOURS[place.get(tag, 0) % len(ANSI_COLOURS)]
        out.append(f"\x1b[{colour}m{piece}{RESET}" if colour else piece)
    return "".join(out)


def tag_page(spans, names, title: str) -> str:
    """The page: a legend of the classes and the text, each span coloured and titled by its class."""
    place = {name: k for k, name in enumerate(names)}

    def css(tag: str) -> str:
        return f"c{place.get(tag, 0) % 8}"

    legend = " ".join(f'<span class="{css(n)}">{html.escape(n)}</span>' for n in names)
    body = "".join(f'<span class="{css(tag)}" title="{html.escape(tag)}">{html.escape(piece)}</span>'
                   for tag, piece in spans)
    return fill(read_page_file("tags.html"), STYLE=read_page_file("tags.css"), TITLE=html.escape(title),
                LEGEND=legend, BODY=body)


__all__ = ["spans_of", "span_lines", "ansi_text", "tag_page", "ANSI_COLOURS"]
