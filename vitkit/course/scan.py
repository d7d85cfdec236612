"""The static scan: patterns in a student's cells that could change grading (read before anything runs).

The scan only reads the submitted notebook's sources; it never runs them. Its findings go to the
instructor beside the grade (see :mod:`vitkit.course.grade`).
"""

from __future__ import annotations

import ast

# Objects a student's cells may not alter. Names are matched on their dotted form in the source.
_GUARDED = ("torch.testing", "numpy.testing", "np.testing", "vitkit.grading", "vitkit", "builtins", "__builtins__",
            "grading", "torch", "numpy", "np")
_GUARDED_LEAVES = ("assert_close", "assert_allclose", "assert_array_equal", "assert_equal", "assert_almost_equal",
                   "assert_array_almost_equal", "allclose", "isclose", "equal", "check_close", "check_shape",
                   "verify_integrity", "close", "isinstance", "AssertionError")
_FORBIDDEN_CALLS = {"setattr", "delattr", "vars", "globals", "__import__", "exec", "eval", "compile"}
_FORBIDDEN_NAMES = {"sys.modules", "importlib", "gc.get_referrers", "ctypes"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Subscript):
        parts.append(_dotted(node.value) + "[]")
    return ".".join(reversed(parts))


def _is_guarded(dotted: str) -> bool:
    head = dotted.rsplit(".", 1)
    return (any(dotted == g or dotted.startswith(g + ".") for g in _GUARDED if g not in ("torch", "numpy", "np", "grading"))
            or (len(head) == 2 and head[1] in _GUARDED_LEAVES))


def scan_for_tampering(sources: list[str]) -> list[str]:
    """Tampering patterns in students' cells: a list of findings (empty when clean).

    Flags assignments or deletions of attributes of ``torch.testing``, ``numpy.testing``,
    ``vitkit.grading``, ``builtins`` (or of any testing/comparison function by name), and any use of
    ``setattr``/``delattr``/``vars``/``globals``/``__dict__``/``sys.modules``/``importlib``/``ctypes``.
    A cell that does not parse (IPython magics) is scanned line by line for the same names.
    """
    findings = []
    for i, source in enumerate(sources):
        text = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(text)
        except SyntaxError:
            for name in ("setattr", "__dict__", "sys.modules", "importlib", "testing.assert"):
                if name in text:
                    findings.append(f"cell {i}: uses {name}")
            continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                for t in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                    if isinstance(t, (ast.Attribute, ast.Subscript)) and _is_guarded(_dotted(t)):
                        findings.append(f"cell {i}, line {node.lineno}: assigns to {_dotted(t)}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
                findings.append(f"cell {i}, line {node.lineno}: calls {node.func.id}()")
            if isinstance(node, ast.Attribute) and (node.attr == "__dict__" or _dotted(node) in _FORBIDDEN_NAMES):
                findings.append(f"cell {i}, line {node.lineno}: uses {_dotted(node)}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                if any(n.split(".")[0] in ("importlib", "ctypes") for n in names):
                    findings.append(f"cell {i}, line {node.lineno}: imports {', '.join(names)}")
                if isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "modules" for a in node.names):
                    findings.append(f"cell {i}, line {node.lineno}: imports sys.modules")
    return findings


def student_sources(nb: dict) -> list[str]:
    """Sources of the cells a student wrote or could have edited (everything but locked/grade test cells).

    Test cells are not scanned: nbgrader overwrites them with the source's version anyway.
    """
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") and not meta.get("solution"):
            continue
        src = cell.get("source", "")
        out.append("".join(src) if isinstance(src, list) else src)
    return out


