"""The static scan flags attacks on grading and leaves ordinary Python alone (issue 14).

Each snippet is what a student could write in an answer cell; the scan reads it without running it.
"""

from __future__ import annotations

import re

import pytest

from vitkit.course.scan import scan_for_tampering, student_sources

ORDINARY = {
    "setattr on the student's model (replacing a head)": "import torch\nfrom torch import nn\n"
    "def new_head(model, n):\n    setattr(model, 'head', nn.Linear(model.config.dim, n))\n    return model",
    "setattr in a loop over layers": "for name in ('fc1', 'fc2'):\n    setattr(self, name, nn.Linear(4, 4))",
    "getattr with a default": "proj = getattr(module, 'proj', None)\nact = getattr(torch.nn.functional, 'gelu')",
    "globals() read": "if 'softmax' in globals():\n    print(globals()['softmax'])\nnames = list(globals())",
    "exec of the student's own helper code": "def make(src):\n    ns = {}\n    exec(src, ns)\n    return ns['f']\n"
    "f = make('def f(x):\\n    return x * 2')",
    "eval of an expression": "value = eval('2 ** 10')",
    "vars() of the student's object": "print(vars(model))\nconfig = dict(vars(args))",
    "a dict named like a module attribute": "cache = {}\ncache['allclose'] = True\nself.close = False\nresult.equal = 1",
    "writing a result file": "import torch\ntorch.save(model.state_dict(), 'model.pt')\nwith open('losses.txt', 'w') as f:\n    f.write(str(losses))",
    "the usual imports": "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    "from vitkit.grading import ps1\nimport vitkit.grading.ps4",
    "reading sys and warnings": "import sys, warnings\nprint(sys.version)\nwarnings.filterwarnings('ignore')",
    "a magic and a shell line": "%matplotlib inline\n!pip list | grep torch\nx = 1",
    "deleting the student's own names": "del scores, weights\ndel model.head",
    "attention with einsum": "def attention(q, k, v):\n    scores = torch.einsum('nd,md->nm', q, k)\n    return scores.softmax(-1) @ v",
    "updating a dict and a state dict": "state = model.state_dict()\nstate.update({'pos_embed': p})\nopts = {}\nopts.setdefault('lr', 1e-3)",
}

ATTACKS = {
    "rebinding torch.testing": "import torch\ntorch.testing.assert_close = lambda *a, **k: None",
    "rebinding numpy's testing via an alias": "import numpy as np\nnp.testing.assert_allclose = print",
    "rebinding a check": "from vitkit import grading\ngrading.check_close = lambda *a, **k: None",
    "setattr on a grading module under an alias": "import vitkit.grading as g\nsetattr(g, 'check_close', None)",
    "setattr on torch": "import torch\nsetattr(torch, 'allclose', lambda *a, **k: True)",
    "a check rebound through the problem set module": "from vitkit.grading import ps1\nps1.check_softmax = lambda f: None",
    "torch.allclose rebound": "import torch\ntorch.allclose = lambda *a, **k: True",
    "sys.modules surgery": "import sys\nsys.modules['vitkit.grading'] = fake",
    "sys.modules pop": "import sys\nsys.modules.pop('vitkit.grading.ps1')",
    "a module's attribute through sys.modules": "import sys\nsys.modules['vitkit.grading'].check_close = 1",
    "from sys import modules": "from sys import modules",
    "reload": "import importlib\nimportlib.reload(x)",
    "a module's __dict__": "torch.testing.__dict__['assert_close'] = None",
    "vars() of a module": "import numpy\nvars(numpy.testing)['assert_allclose'] = print",
    "IPython's custom exception handler": "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)",
    "IPython's showtraceback": "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None",
    "sys.excepthook": "import sys\nsys.excepthook = lambda *a: None",
    "an exception's own rendering": "AssertionError._render_traceback_ = lambda self: []",
    "builtins": "import builtins\nbuiltins.isinstance = lambda *a: True",
    "__builtins__": "__builtins__.AssertionError = Warning",
    "rebinding torch for the test cells": "torch = FakeTorch()",
    "importing another module as np": "import fakenumpy as np",
    "globals() write of a test-cell name": "globals()['torch'] = fake",
    "globals().update": "globals().update(fake_names)",
    "ctypes": "import ctypes",
    "writing the gradebook": "with open('../gradebook.db', 'w') as f:\n    f.write('')",
    "writing a grading module's file": "from pathlib import Path\nimport vitkit.grading.ps1 as p\nPath(p.__file__).write_text('')",
    "a shell line on nbgrader's folders": "!rm -rf ../autograded",
    "%%writefile onto vitkit's checks": "%%writefile /usr/lib/python3/site-packages/vitkit/grading/ps1.py\nprint(1)",
    "an attack inside a string that is exec'd": "exec('import torch\\ntorch.testing.assert_close = lambda *a, **k: None')",
}


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_python_is_not_flagged(name):
    assert scan_for_tampering([ORDINARY[name]]) == []


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_is_flagged_with_its_cell_and_line(name):
    findings = scan_for_tampering(["x = 1", ATTACKS[name]])
    assert findings, f"not flagged: {ATTACKS[name]!r}"
    assert all(re.match(r"cell 1, line \d+: \S", f) for f in findings), findings


def test_the_line_named_is_the_line_of_the_attack():
    findings = scan_for_tampering(["import torch\n\n\ntorch.testing.assert_close = None\n"])
    assert findings == ["cell 0, line 4: assigns to torch.testing.assert_close"]


def test_student_sources_leave_out_locked_test_cells():
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "answer = 1",
                "metadata": {"nbgrader": {"solution": True, "grade_id": "a"}},
            },
            {
                "cell_type": "code",
                "source": ["check(", "answer)"],
                "metadata": {"nbgrader": {"grade": True, "locked": True, "grade_id": "t"}},
            },
            {"cell_type": "markdown", "source": "text", "metadata": {}},
            {"cell_type": "code", "source": "scratch = 2", "metadata": {}},
        ]
    }
    assert student_sources(nb) == ["answer = 1", "scratch = 2"]
