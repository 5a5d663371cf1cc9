"""The HTML, CSS and JavaScript of the analysis pages, as package data files an editor can read."""

import re
from importlib.resources import files


def read_page_file(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def fill(template: str, **values: str) -> str:
    """The template with each %NAME% replaced by values[NAME], in one pass, so that no value
    (a user's text, a corpus) is itself searched for placeholders."""
    return re.sub(r"%([A-Z]+)%", lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template)
