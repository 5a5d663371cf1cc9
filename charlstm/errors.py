"""The one exception type charlstm raises for problems a user can act on."""

import contextlib


class CharlstmError(Exception):
    """A problem with the user's input or files, with a one-line message that says what to do."""


class CharlstmWarning(UserWarning):
    """A result that is computed but may mislead (a figure on the model's own training text, a
    corpus other than the model's): Python's warnings show it in a notebook, the CLI prints it as
    one line."""


class TextError(CharlstmError):
    """A problem with the content of a text the caller handed in (a symbol the vocabulary lacks, too
    few symbols), where only the caller knows which file or option the text came from: the CLI
    puts that name in front of the message."""


class ArgumentError(CharlstmError):
    """A problem with one argument of a public function (an option of a command): the message
    names it as `{name}`, filled in with the argument's name in Python (num_layers) and, by the
    command line, with its option's (--layers), so each reader sees the name they typed."""

    def __init__(self, argument: str | tuple, template: str):
        # one argument, or several refused together (`{name}` then lists them all, `{name0}`,
        # `{name1}`, ... name each)
        self.arguments = (argument,) if isinstance(argument, str) else tuple(argument)
        self.argument, self.template = self.arguments[0], template
        super().__init__(self.named(*self.arguments))

    def named(self, *names: str) -> str:
        return self.template.format(name=", ".join(names), **{f"name{i}": n for i, n in enumerate(names)})


def about(source, message: str) -> str:
    """A message about a file (or an option) names it, once."""
    return message if message.startswith(f"{source}:") else f"{source}: {message}"


@contextlib.contextmanager
def naming(source, checkpoint=None):
    """Problems with the content of a text (a symbol the vocabulary lacks, too few symbols) name
    where the text came from (a file, --prime) and the checkpoint whose vocabulary it is."""
    try:
        yield
    except TextError as e:
        suffix = f" ({checkpoint})" if checkpoint is not None and "vocabulary" in str(e) else ""
        raise CharlstmError(about(source, str(e)) + suffix) from None
