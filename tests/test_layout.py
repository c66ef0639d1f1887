"""The package's shape: no import cycles, and training settings in one place."""
import ast
import inspect
from pathlib import Path

import kfkd_kit
from kfkd_kit import configs, selection, train, zoo

PACKAGE = Path(kfkd_kit.__file__).parent


def _imports(path: Path) -> set:
    """kfkd_kit modules imported anywhere in ``path``, lazy imports inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("kfkd_kit."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("kfkd_kit."))
    return found


def test_the_import_graph_has_no_cycle():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {p.stem: _imports(p) & modules for p in PACKAGE.glob("*.py")}
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for other in sorted(graph[module]):
            visit(other, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert graph["configs"] >= {"specialists"} and "configs" not in graph["specialists"]


def test_training_settings_are_applied_in_one_place():
    # train, cv, grid and zoo take an estimator; only configs.configure (and the CLI that
    # reads the command) knows the settings by name
    settings = set(configs.OVERRIDES) | {"max_epochs", "early_stopping"}
    for function in (train.train, selection.cross_validate_net, selection.grid_search,
                     selection.run_cv, selection.run_grid, zoo.run_zoo):
        loose = settings & set(inspect.signature(function).parameters)
        assert not loose, f"{function.__qualname__} takes {sorted(loose)}"
