#!/usr/bin/env python3
"""The package's internal import graph: rooms (sub-packages), cycles, imports that run up a layer.

    python tools/import_graph.py            # summary: edges between rooms, cycles, violations
    python tools/import_graph.py --files    # file-level cycles too
    python tools/import_graph.py --json     # machine-readable (the architecture test uses it)

Read from the source text with ``ast`` (nothing is imported or run), imports inside functions
and ``TYPE_CHECKING`` blocks included: a lazy import is still a dependency. Lower layers never
import higher ones (``LAYERS``; the picture in docs/architecture.md).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "deal_ros"
# Layer of each room: a room may import rooms of its own or a lower layer only.
LAYERS: dict[str, int] = {
    "errors": 0, "_moved": 0,
    "core": 1,
    "losses": 2, "nets": 2, "refine": 2, "scene": 2, "episodes": 2,
    "data": 3, "engine": 3,
    "infer": 4,
    "eval": 5,
    "train": 6, "instance": 6,
    "export": 7,
    "nodes": 8, "demo": 8,
    "commands": 9, "cli": 9,
}  # fmt: skip
# Rooms that must never import these top-level modules (directly, in any of their files).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": ("torch", "rclpy"),
    "engine": ("rclpy",),
    "train": ("rclpy",),
    "instance": ("rclpy",),
    "infer": ("torch", "rclpy"),
    "episodes": ("torch", "rclpy"),
    "scene": ("torch", "rclpy"),
}


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.append(prefix)
            found += [f"{prefix}.{a.name}" for a in node.names]
    return found


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """(file -> internal files it imports, file -> external top-level modules, known files)."""
    files = {module_name(p, root): p for p in (root / PACKAGE).rglob("*.py")}
    internal: dict[str, set[str]] = defaultdict(set)
    external: dict[str, set[str]] = defaultdict(set)
    for mod, path in files.items():
        for name in imports_of(path, mod):
            if name.split(".")[0] == PACKAGE:
                target = name
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != mod and target != PACKAGE:
                    internal[mod].add(target)
            else:
                external[mod].add(name.split(".")[0])
    return internal, external, {m: {str(p)} for m, p in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    nodes = set(edges) | {w for ws in edges.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def report(root: Path) -> dict:
    internal, external, files = graph(root)
    rooms: dict[str, set[str]] = defaultdict(set)
    up: list[str] = []
    for src, targets in internal.items():
        for dst in targets:
            a, b = room_of(src), room_of(dst)
            if a and b and a != b:
                rooms[a].add(b)
                la, lb = LAYERS.get(a), LAYERS.get(b)
                if la is not None and lb is not None and lb > la:
                    up.append(f"{src} -> {dst}")
    forbidden = [
        f"{mod} imports {ext}"
        for mod, exts in external.items()
        for ext in sorted(exts)
        if ext in FORBIDDEN.get(room_of(mod) or "", ())
    ]
    unknown = sorted({r for r in map(room_of, files) if r and r not in LAYERS})
    return {
        "files": len(files),
        "imports": sum(len(t) for t in internal.values()),
        "room_edges": {a: sorted(b) for a, b in sorted(rooms.items())},
        "room_cycles": cycles(rooms),
        "file_cycles": cycles(internal),
        "up_layer": sorted(up),
        "forbidden": sorted(forbidden),
        "rooms_without_layer": unknown,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--files", action="store_true", help="list file-level cycles")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = report(args.root)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['files']} files, {r['imports']} internal imports")
    for a, bs in r["room_edges"].items():
        print(f"  {a:<9} -> {', '.join(bs)}")
    print(f"room cycles: {len(r['room_cycles'])}")
    for c in r["room_cycles"]:
        print("  " + " <-> ".join(c))
    print(f"file cycles: {len(r['file_cycles'])}")
    if args.files:
        for c in r["file_cycles"]:
            print("  " + " <-> ".join(c))
    print(f"imports running up a layer: {len(r['up_layer'])}")
    for line in r["up_layer"]:
        print("  " + line)
    print(f"forbidden imports: {len(r['forbidden'])}")
    for line in r["forbidden"]:
        print("  " + line)
    if r["rooms_without_layer"]:
        print("rooms without a layer: " + ", ".join(r["rooms_without_layer"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
