"""The static scan: what in a student's cells could change grading (read before anything runs).

The scan only reads the submitted notebook's sources; it never runs them. It flags attacks on
grading, not Python: rebinding the kit's checks or the testing functions they use, IPython's
exception hooks, ``sys.modules`` surgery, writes to grading files, rebinding the modules the test
cells use. It leaves ordinary code alone: ``setattr`` on the student's own objects, reading
``globals()``, ``getattr``, ``exec`` of the student's own strings (those strings are scanned too).
Its findings go to the instructor beside the grade (see :mod:`vitkit.course.grade`): a flagged
submission is still graded, and the instructor decides. The tables of what it guards are in
:mod:`vitkit.course.guarded`.
"""

from __future__ import annotations

import ast

from vitkit.course.guarded import (
    _GRADING_PATHS,
    _GUARDED_MODULES,
    _HOOKS,
    _MODULE_ROOTS,
    _TEST_CELL_NAMES,
    _TESTING,
    _WRITES,
)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        elif isinstance(node, ast.Subscript):
            parts.append("[]")
        else:
            parts.append("()")
        node = node.value if not isinstance(node, ast.Call) else node.func
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts)).replace(".[]", "[]").replace(".()", "()")


def _root(dotted: str) -> str:
    return dotted.split(".", 1)[0].split("[", 1)[0].split("(", 1)[0]


def _guarded(dotted: str) -> bool:
    """True for an attribute of a guarded module, a testing function or check of a module, or an exception hook."""
    leaf = dotted.rsplit(".", 1)[-1].split("[", 1)[0]
    if any(dotted == g or dotted.startswith((g + ".", g + "[")) for g in _GUARDED_MODULES):
        return True
    if leaf in _HOOKS:
        return True
    return (leaf in _TESTING or leaf.startswith("check_")) and (_root(dotted) in _MODULE_ROOTS or "testing" in dotted)


def _strings(node: ast.AST):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


class _Scan(ast.NodeVisitor):
    def __init__(self, cell: int, offset: int = 0, depth: int = 0, aliases: dict | None = None):
        self.cell, self.offset, self.depth, self.findings = cell, offset, depth, []
        self.aliases = (
            aliases if aliases is not None else {}
        )  # import aliases of every cell so far: g -> vitkit.grading

    def dotted(self, node: ast.AST) -> str:
        """The dotted form of an expression with import aliases resolved (``g.check_close`` -> ``vitkit.grading.check_close``)."""
        dotted = _dotted(node)
        root = _root(dotted)
        if root in self.aliases and self.aliases[root] != root:
            dotted = self.aliases[root] + dotted[len(root) :]
        return dotted

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(f"cell {self.cell}, line {getattr(node, 'lineno', 1) + self.offset}: {what}")

    # --- assignments: to guarded attributes, to vars()/__dict__/globals() of guarded things, rebinding test-cell names
    def _target(self, node: ast.AST, t: ast.AST, verb: str) -> None:
        if isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                self._target(node, e, verb)
            return
        if isinstance(t, ast.Starred):
            return self._target(node, t.value, verb)
        if isinstance(t, ast.Name):
            if t.id in _TEST_CELL_NAMES and verb != "deletes":
                self.flag(node, f"rebinds {t.id}, a name the test cells use")
            return
        dotted = self.dotted(t)
        if isinstance(t, (ast.Attribute, ast.Subscript)) and _guarded(dotted):
            self.flag(node, f"{verb} {dotted}")
        elif isinstance(t, ast.Subscript):
            base = t.value
            if (
                isinstance(base, ast.Call)
                and isinstance(base.func, ast.Name)
                and base.func.id == "vars"
                and base.args
                and _root(self.dotted(base.args[0])) in _MODULE_ROOTS
            ):
                self.flag(node, f"{verb} vars({self.dotted(base.args[0])})[...]")
            elif (
                isinstance(base, ast.Attribute)
                and base.attr == "__dict__"
                and _root(self.dotted(base.value)) in _MODULE_ROOTS
            ):
                self.flag(node, f"{verb} {self.dotted(base)}[...]")
            elif isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "globals":
                key = t.slice.value if isinstance(t.slice, ast.Constant) else None
                if key is None or key in _TEST_CELL_NAMES:
                    self.flag(
                        node, f"{verb} globals()[{key!r}]" if key else f"{verb} globals()[...] with a computed name"
                    )

    def visit_Assign(self, node):
        for t in node.targets:
            self._target(node, t, "assigns to")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node, node.target, "assigns to")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._target(node, node.target, "assigns to")
        self.generic_visit(node)

    def visit_Delete(self, node):
        for t in node.targets:
            self._target(node, t, "deletes")
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        if node.name in _TEST_CELL_NAMES:
            self.flag(node, f"rebinds {node.name}, a name the test cells use")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    # --- imports: ctypes (memory writes), sys.modules by name, a module imported under a test-cell name it is not
    def visit_Import(self, node):
        for a in node.names:
            self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            if a.name.split(".")[0] == "ctypes":
                self.flag(node, "imports ctypes")
            bound = a.asname or a.name.split(".")[0]
            if a.asname and bound in _TEST_CELL_NAMES and not _same_module(bound, a.name):
                self.flag(node, f"imports {a.name} as {bound}, a name the test cells use")
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if module.split(".")[0] == "ctypes":
            self.flag(node, "imports ctypes")
        if module == "sys" and any(a.name == "modules" for a in node.names):
            self.flag(node, "imports sys.modules")
        for a in node.names:
            bound = a.asname or a.name
            self.aliases[bound] = f"{module}.{a.name}"
            if bound in _TEST_CELL_NAMES and not _same_module(bound, f"{module}.{a.name}"):
                self.flag(node, f"imports {module}.{a.name} as {bound}, a name the test cells use")
        self.generic_visit(node)

    # --- calls
    def visit_Call(self, node):
        func = self.dotted(node.func)
        leaf = func.rsplit(".", 1)[-1]
        if func in ("setattr", "delattr") and node.args:
            target = self.dotted(node.args[0])
            name = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
            if (
                _root(target) in _MODULE_ROOTS
                or _guarded(target)
                or name in _TESTING | _HOOKS
                or target.endswith("get_ipython()")
            ):
                self.flag(node, f"calls {func}({target}, {name!r})" if name else f"calls {func}({target}, ...)")
        elif leaf in ("update", "setdefault", "__setitem__", "pop", "clear", "__delitem__", "popitem"):
            owner = func.rsplit(".", 1)[0]
            if owner in ("sys.modules", "modules") or (owner.startswith("vars(") is False and _guarded(owner)):
                self.flag(node, f"calls {func}()")
            elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call):
                inner = node.func.value
                if isinstance(inner.func, ast.Name) and inner.func.id == "globals" and leaf != "pop":
                    self.flag(node, f"calls globals().{leaf}()")
                if (
                    isinstance(inner.func, ast.Name)
                    and inner.func.id == "vars"
                    and inner.args
                    and _root(self.dotted(inner.args[0])) in _MODULE_ROOTS
                ):
                    self.flag(node, f"calls vars({self.dotted(inner.args[0])}).{leaf}()")
        elif leaf in _HOOKS:
            self.flag(node, f"calls {func}()")
        elif func in ("importlib.reload", "reload") and node.args:
            self.flag(node, f"reloads {self.dotted(node.args[0])}")
        elif func in ("gc.get_referrers", "gc.get_objects"):
            self.flag(node, f"calls {func}()")
        if leaf in _WRITES:
            paths = [s for s in _strings(node) if any(p in s for p in _GRADING_PATHS)]
            reads_file = any(isinstance(sub, ast.Attribute) and sub.attr == "__file__" for sub in ast.walk(node))
            mode = next((s for s in (node.args[1:2] if func == "open" else []) if isinstance(s, ast.Constant)), None)
            writes = (
                func != "open"
                or (mode is not None and any(c in str(mode.value) for c in "wax+"))
                or any(
                    k.arg == "mode"
                    and isinstance(k.value, ast.Constant)
                    and any(c in str(k.value.value) for c in "wax+")
                    for k in node.keywords
                )
            )
            if writes and (paths or reads_file):
                self.flag(node, f"calls {func}() on a grading file ({paths[0] if paths else 'a module file'})")
        self.generic_visit(node)

    # --- code in strings (exec of the student's own strings is Python; what the strings do is scanned)
    def visit_Constant(self, node):
        text = node.value
        if isinstance(text, str) and self.depth < 2 and any(c in text for c in "\n=("):
            try:
                tree = ast.parse(node.value)
            except (SyntaxError, ValueError):
                return
            if all(isinstance(s, ast.Expr) and isinstance(s.value, (ast.Name, ast.Constant)) for s in tree.body):
                return
            inner = _Scan(self.cell, node.lineno - 1 + self.offset, self.depth + 1, self.aliases)
            inner.visit(tree)
            self.findings += [f.replace(": ", ": (in a string) ", 1) for f in inner.findings]


def _same_module(bound: str, imported: str) -> bool:
    """``import numpy as np`` and ``from torch import nn`` bind the module their name means: not a rebinding."""
    expected = {
        "np": "numpy",
        "numpy": "numpy",
        "torch": "torch",
        "F": "torch.nn.functional",
        "nn": "torch.nn",
        "math": "math",
        "vitkit": "vitkit",
        "builtins": "builtins",
    }.get(bound, f"vitkit.grading.{bound}")
    return imported.lstrip(".") == expected


def _magic_findings(cell: int, source: str) -> list[str]:
    """IPython magics and shell lines (``%%writefile``, ``!rm``) that touch grading files."""
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) and any(p in stripped for p in _GRADING_PATHS):
            out.append(f"cell {cell}, line {n}: shell or magic line on a grading file: {stripped[:80]}")
    return out


def scan_for_tampering(sources: list[str]) -> list[str]:
    """Findings ("cell i, line n: ...") of what in students' cells could change grading; empty when clean.

    Flags: assigning or deleting attributes of ``torch.testing``, ``numpy.testing``, ``vitkit`` (the
    checks), ``builtins`` or the comparison functions; ``setattr``/``delattr``/``vars()`` writes on those
    modules; IPython's and Python's exception hooks; ``sys.modules`` changes; ``globals()`` writes of
    the names test cells use (``torch``, ``np``, ...) or under a computed name; rebinding those names;
    ``importlib.reload``; ``ctypes``; ``gc.get_referrers``; writes to grading files (the gradebook,
    nbgrader's folders, vitkit's files) from Python, magics or shell lines. Code inside string
    constants is scanned the same way. A cell that does not parse is scanned line by line for the
    hooks and module names.
    """
    findings, aliases = [], {}
    for i, source in enumerate(sources):
        findings += _magic_findings(i, source)
        text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(text)
        except SyntaxError:
            for n, line in enumerate(text.splitlines(), 1):
                for name in (
                    "sys.modules",
                    "set_custom_exc",
                    "showtraceback",
                    "excepthook",
                    "testing.assert",
                    "vitkit.grading.",
                    "__builtins__",
                    "ctypes",
                ):
                    if name in line:
                        findings.append(f"cell {i}, line {n}: uses {name} (in a cell that does not parse)")
            continue
        scan = _Scan(i, aliases=aliases)
        scan.visit(tree)
        findings += scan.findings
    return list(dict.fromkeys(findings))


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
