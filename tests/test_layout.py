"""The package's layers: each folder imports only from the folders below it, nothing above the
model reaches into a cell's module, no two modules import each other, and no module shadows the
standard library. Read from the source (ast), so a violation fails here before it confuses a reader."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "charlstm"

# Bottom to top. A module may import from its own layer and from the layers before it.
LAYERS = [
    {"errors", "files", "validate"},
    {"nn"},
    {"model"},
    {"data"},
    {"decoding"},
    {"training"},
    {"analysis", "export"},
    {"progress"},
    {"api", "torch", "onnx"},
    {"cli", "__main__", "__init__"},
]
CELL_MODULES = {"charlstm.nn.cells.lstm", "charlstm.nn.cells.gru", "charlstm.nn.cells.rnn",
                "charlstm.nn.cells.peephole"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("charlstm"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("charlstm"):
                for alias in node.names:   # `from charlstm.nn.cells import lstm` imports a module
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                              or (PACKAGE.parent / candidate.replace(".", "/")).is_dir() else base)
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module != "charlstm" else "__init__"
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS")


ALL = dict(modules())


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_module_imports_only_from_its_layer_and_below(name):
    mine = layer_of(name)
    for imported in imports_of(ALL[name], name):
        assert layer_of(imported) <= mine, f"{name} imports {imported}, which is above it"


@pytest.mark.parametrize("name", sorted(n for n in ALL if not n.startswith(("charlstm.nn", "charlstm.model"))))
def test_nothing_above_the_model_reaches_into_a_cell(name):
    reached = imports_of(ALL[name], name) & CELL_MODULES
    assert not reached, f"{name} imports {reached}: go through charlstm.model or the Cell record"


def test_no_two_modules_import_each_other():
    graph = {name: imports_of(path, name) & set(ALL) for name, path in ALL.items()}
    pairs = [(a, b) for a in graph for b in graph[a] if a in graph.get(b, ()) and a < b
             and not (b.startswith(a + ".") or a.startswith(b + "."))]    # a package's face and its modules
    assert not pairs, pairs


def test_no_module_shadows_the_standard_library():
    shadows = [name for name in ALL if name.rpartition(".")[2] in sys.stdlib_module_names]
    assert not shadows, shadows
