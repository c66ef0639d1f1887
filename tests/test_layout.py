"""The package's shape, read top to bottom (docs/ARCHITECTURE.md): each layer imports only the
layers below it; commands never import one another; no import cycles; training settings in
one place."""
import ast
import inspect
from pathlib import Path

import kfkd_kit
from kfkd_kit import configs, training
from kfkd_kit.net import settings as net_settings
from kfkd_kit.search import grid as search_grid, selection
from kfkd_kit.commands import NAMES, cv, grid, train, zoo

PACKAGE = Path(kfkd_kit.__file__).parent
FRONT_DOOR = {"cli", "__main__"}
# bottom to top: a module may import its own package and the layers below its own, never
# one beside or above it (net and photo sit side by side: photo runs without torch)
LAYERS = [{"", "_moved", "_lazy", "keypoints"}, {"utils"}, {"data"}, {"net", "photo"}, {"meta"},
          {"configs", "recipes"}, {"search", "training", "serve"}, {"commands"}, {"cli"}, {"__main__"}]


def _layer(module):
    group = module.split(".")[0]
    return next(rank for rank, names in enumerate(LAYERS) if group in names)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node, module: str, is_package: bool) -> set:
    """The kfkd_kit modules (dotted, relative to the package) an import statement names."""
    if isinstance(node, ast.Import):
        return {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("kfkd_kit.")}
    if node.level == 0:
        if not (node.module or "").startswith("kfkd_kit"):
            return set()
        base = node.module.split(".")[1:]
    else:
        here = module.split(".") if module else []
        package = here if is_package else here[:-1]
        base = package[:len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
    found = set()
    for alias in node.names:      # `from . import x` may name a module x
        found.add(".".join(base + [alias.name]))
    found.add(".".join(base))
    return found


def _graph() -> dict:
    paths = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    names = {_module_name(p) for p in paths}
    graph = {}
    for path in paths:
        module = _module_name(path)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):   # lazy imports in functions too
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= _resolve(node, module, path.name == "__init__.py")
        graph[module] = {name for name in found if name in names and name and name != module}
    return graph


GRAPH = _graph()


def _is_command(module):
    return module.startswith("commands.")


def test_the_graph_sees_the_packages_modules():
    assert {"net.estimator", "commands.train", "commands._options", "cli"} <= set(GRAPH)
    assert "commands._options" in GRAPH["commands.train"] and "configs" in GRAPH["commands.train"]
    assert {f"commands.{name}" for name in NAMES} <= set(GRAPH)


def test_every_module_belongs_to_a_layer():
    for module in GRAPH:
        _layer(module)   # StopIteration names a module outside LAYERS


def test_each_layer_imports_only_its_own_package_and_the_layers_below():
    for module, imports in GRAPH.items():
        group, rank = module.split(".")[0], _layer(module)
        for other in imports:
            if other.split(".")[0] == group:
                continue
            below = _layer(other) < rank or _layer(other) == rank == 0   # the root, one layer
            assert below, f"{module} imports {other}, which is not below it"


def test_the_estimator_side_never_imports_commands_or_the_cli():
    for module, imports in GRAPH.items():
        if module and not _is_command(module) and module != "commands" and module not in FRONT_DOOR:
            upward = {m for m in imports if _is_command(m) or m == "commands" or m in FRONT_DOOR}
            assert not upward, f"{module} (estimator side) imports {sorted(upward)}"


def test_commands_never_import_one_another():
    # they share through the estimator side or the private helpers commands/_*.py
    for module, imports in GRAPH.items():
        if not _is_command(module):
            continue
        others = {m for m in imports if _is_command(m) and not m.split(".")[1].startswith("_")}
        assert not others, f"{module} imports the command(s) {sorted(others)}"
        assert not imports & FRONT_DOOR, f"{module} imports the CLI"


def test_every_command_module_declares_its_parser_and_its_work():
    import importlib
    for name in NAMES:
        module = importlib.import_module(f"kfkd_kit.commands.{name}")
        assert callable(module.add_parser) and callable(module.run), name


def test_the_import_graph_has_no_cycle():
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for other in sorted(GRAPH[module]):
            visit(other, path + [module])
        state[module] = "done"

    for module in sorted(GRAPH):
        visit(module, [])
    assert GRAPH["configs"] >= {"meta.specialists"} and "configs" not in GRAPH["meta.specialists"]


def test_training_settings_are_applied_in_one_place():
    # train, cv, grid and zoo take an estimator; only configs.configure (and the CLI that
    # reads the command) knows the settings by name
    settings = set(net_settings.OVERRIDES) | {"max_epochs", "early_stopping"}
    for function in (train.train, training.fit_and_save, selection.cross_validate_net, search_grid.grid_search,
                     cv.run_cv, grid.run_grid, zoo.run_zoo):
        loose = settings & set(inspect.signature(function).parameters)
        assert not loose, f"{function.__qualname__} takes {sorted(loose)}"


def test_the_tests_mirror_the_package():
    """tests/<sub>/ holds the tests of kfkd_kit/<sub>/; fixtures/ the files they read."""
    tests = Path(__file__).parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    package = {p.name for p in Path(kfkd_kit.__file__).parent.iterdir()
               if (p / "__init__.py").is_file()}
    assert folders - {"fixtures"} <= package, sorted(folders - {"fixtures"} - package)
    assert package <= folders, sorted(package - folders)
