"""The package tree reads like the pipeline: one package per stage, lower stages never import upper
ones, and no module imports itself back through others. Read with `ast`, so imports inside
functions count as much as those at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cityseg"

# Stage -> the stages it may import (besides itself). Lower stages never import upper ones.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "data": {"common"},
    "models": {"common", "data"},
    "evaluation": {"common", "data"},
    "inference": {"common", "data", "models", "evaluation"},
    "training": {"common", "data", "models", "evaluation", "inference"},
    "service": {"common", "data", "inference"},
    "experiments": {"common", "data", "models", "evaluation", "inference", "training"},
    "report": {"common", "data", "models", "evaluation", "inference", "training", "experiments"},
    "bench": {"common", "data", "models", "evaluation", "inference", "training", "service"},
    "cli": {
        "common", "data", "models", "evaluation", "inference", "training", "service",
        "experiments", "report", "bench",
    },
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The cityseg modules `path` imports (a `from pkg import name` counts as pkg.name when that
    is a module). The project writes absolute imports only, which the assertion keeps true."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cityseg"))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            base = node.module or ""
            if base.startswith("cityseg"):
                for alias in node.names:
                    name = f"{base}.{alias.name}"
                    found.add(name if name in known else base)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) & known - {name} for name, path in mods.items()}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_top_level_holds_only_packages() -> None:
    loose = sorted(
        p.name
        for p in SRC.iterdir()
        if p.suffix == ".py" and p.name not in {"__init__.py", "__main__.py"}
    )
    assert loose == [], f"modules outside a stage package: {loose}"
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED), "a new package needs its place in ALLOWED"


def test_lower_stages_never_import_upper_ones() -> None:
    bad = []
    for module, targets in graph().items():
        own = stage(module)
        if own is None:
            continue
        for target in sorted(targets):
            other = stage(target)
            if other is not None and other != own and other not in ALLOWED[own]:
                bad.append(f"{module} -> {target}")
    assert bad == [], "imports against the pipeline order:\n" + "\n".join(bad)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(edges):
        if state.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(edges[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()))))
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ],
)
def test_cycle_finder(edges: dict[str, set[str]], expected: bool) -> None:
    assert (find_cycle(edges) is not None) is expected


def test_the_rules_catch_a_planted_violation(tmp_path: Path) -> None:
    """A data module that imports training is reported (the rule is not vacuous)."""
    source = tmp_path / "cityseg" / "data" / "bad.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from cityseg.training.train import train\n")
    assert imports_of(source, {"cityseg.training.train"}) == {"cityseg.training.train"}
    assert "training" not in ALLOWED["data"]
    assert "training" not in ALLOWED["inference"] and "service" not in ALLOWED["models"]
