"""The class-wide mistake report (issue 10) on real problem sets.

A class built from PS1's solution and from submissions with known injected mistakes (two
different mistakes for every graded question of PS1, in known proportions: one made by two
students, the other by one) and one submission whose failure no check knows, handed in as an LMS
zip, goes through collect, autograde (sandboxed, --jobs 2) and report. The report counts each
mistake exactly, under the right question, and the unknown failure under "other: ..."; each
student's feedback shows their own mistakes with the catalogue's hint and never a hidden test.
PS2 and PS3 ride along in the same grading run: two different mistakes for every graded function, one
submission per set of mistakes.

The catalogue test at the end grades nothing: every code the WRONG injections of ps1-ps5 expect
has a message and a hint, and the grading workers' static view of the catalogue is the real one.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from tests.injections import load  # noqa: E402
from vitkit.course import collect as collect_mod  # noqa: E402
from vitkit.course import feedback as feedback_mod  # noqa: E402
from vitkit.course import grade, report  # noqa: E402
from vitkit.course.mistakes import catalogue_codes, known_codes  # noqa: E402
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PS1, PS2, PS3 = "ps1_self_attention", "ps2_multihead_attention", "ps3_patch_embeddings"

# No workaround for chained answers: the solution's self_attention calls the student's (wrong) softmax and the
# solution's embed_image the student's (wrong) prepend_cls; the checks grade them with the references in their
# place (issue 14), so each mistake is counted under its own question only.
UNKNOWN = "def attention_pairs(height, width, patch_size=1):\n    raise RuntimeError('my own bug in attention_pairs')\n"

# PS1: per question (solution cell), mistake A made by two students and mistake B by one.
PS1_PLAN = {
    "softmax": ("ps1.softmax.wrong_axis", ["s1", "s2"], "ps1.softmax.not_normalised", ["s3"]),
    "worked_example": (
        "ps1.worked_example.keys_not_transposed",
        ["s4", "s5"],
        "ps1.worked_example.exact_softmax",
        ["s6"],
    ),
    "self_attention": ("ps1.self_attention.no_scale", ["s5", "s7"], "ps1.self_attention.weights_wrong_axis", ["s4"]),
    "pixels_to_tokens": (
        "ps1.pixels_to_tokens.no_permute",
        ["s1", "s6"],
        "ps1.pixels_to_tokens.channels_first",
        ["s7"],
    ),
    "attention_pairs": ("ps1.attention_pairs.tokens_not_pairs", ["s2", "s3"], "ps1.attention_pairs.patch_area", ["s5"]),
    "answer_weight_matrices": ("ps1.weight_matrices.per_input", ["s1", "s4"], "ps1.weight_matrices.wrong", ["s7"]),
    "answer_related": ("ps1.related.swapped", ["s2", "s6"], "ps1.related.tie", ["s3"]),
    "answer_why_dot_product": ("ps1.why_dot_product.normalises", ["s3", "s5"], "ps1.why_dot_product.positive", ["s2"]),
    "answer_why_scaling": ("ps1.why_scaling.speed", ["s6", "s7"], "ps1.why_scaling.averages", ["s1"]),
}
PS1_STUDENTS = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]  # s0: the solution; s8: the unknown failure

# PS2, PS3: two different mistakes for every graded function, several functions per submission (no two mistakes of
# one submission interact).
PS2_PLAN = {
    "p2": {"mhsa": "ps2.mhsa.no_scale", "params": "ps2.params.no_bias", "shapes": "ps2.shapes.output_wrong"},
    "q2": {
        "mhsa": "ps2.mhsa.heads_merged_wrong_order",
        "params": "ps2.params.per_head",
        "shapes": "ps2.shapes.query_count_rejected",
    },
}
PS3_PLAN = {
    "p3": {
        "tokens": "ps3.tokens.cls_counted",
        "conv": "ps3.conv.bias_missing",
        "cls": "ps3.cls.appended",
        "sincos": "ps3.sincos.sin_cos_swapped",
        "pad": "ps3.pad.front",
        "resample": "ps3.resample.wrong_mode",
    },
    "q3": {
        "tokens": "ps3.tokens.square_assumed",
        "conv": "ps3.conv.weight_order",
        "cls": "ps3.cls.replaced_first",
        "sincos": "ps3.sincos.rows_cols_swapped",
        "pad": "ps3.pad.kept_last",
        "resample": "ps3.resample.cls_dropped",
    },
    # these PatchEmbedding and embed_image mistakes do not call the (wrong) patchify or prepend_cls of the same student
    "r3": {
        "patchify": "ps3.patchify.no_permute",
        "embed": "ps3.embed.patch_order",
        "pos_embed": "ps3.pos_embed.cls_appended",
    },
    "t3": {
        "patchify": "ps3.patchify.grid_column_major",
        "embed": "ps3.embed.proj_missing",
        "pos_embed": "ps3.pos_embed.wrong_tokens",
    },
    # a patchify mistake only: the solution's PatchEmbedding calls this wrong patchify (issue 14's chain)
    "u3": {"patchify": "ps3.patchify.rows_cols_swapped"},
}


def wrong(ps: str, code: str):
    return next(i for i in load(ps)[0] if i.code == code)


def ps1_overrides(student: str) -> dict[str, str]:
    out = {}
    for cell, (a, a_students, b, b_students) in PS1_PLAN.items():
        if student in a_students:
            out[cell] = wrong(PS1, a).source
        elif student in b_students:
            out[cell] = wrong(PS1, b).source
    if student == "s8":
        out["attention_pairs"] = UNKNOWN
    return out


def ps1_expected() -> dict[tuple[str, str], int]:
    """(grade cell, mistake) -> number of students, as the plan says."""
    out = {}
    for cell, (a, a_students, b, b_students) in PS1_PLAN.items():
        out[(f"test_{cell}", a)] = len(a_students)
        out[(f"test_{cell}", b)] = len(b_students)
    out[("test_attention_pairs", "other: RuntimeError: my own bug in attention_pairs")] = 1
    return out


def notebook(ps: str, overrides: dict[str, str]) -> bytes:
    release = json.loads((REPO / "exercises" / ps / f"{ps}.ipynb").read_text())
    solution = json.loads((REPO / "solutions" / ps / f"{ps}.ipynb").read_text())
    return json.dumps(builders.answered(release, solution, overrides)).encode()


def hidden_lines(ps: str) -> list[str]:
    """Every non-blank line of the hidden tests of ``ps``'s source notebook."""
    nb = json.loads((REPO / "solutions" / ps / f"{ps}.ipynb").read_text())
    lines = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", src, re.S):
            lines += [
                line.strip()
                for line in block.splitlines()
                if line.strip() and not line.strip().startswith(("from ", "import "))
            ]
    return lines


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """PS1's class, plus PS2's and PS3's, collected from one LMS zip and autograded in one --jobs 2 run."""
    root = tmp_path_factory.mktemp("mistakes") / "course"
    for ps in (PS1, PS2, PS3):
        shutil.copytree(REPO / "solutions" / ps, root / "solutions" / ps)
        shutil.copytree(REPO / "exercises" / ps, root / "exercises" / ps)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    course = Course(str(root))
    members = {}
    for i, student in enumerate(PS1_STUDENTS):
        members[f"{student}_{100 + i}_{900 + i}_{PS1}.ipynb"] = notebook(PS1, ps1_overrides(student))
    for ps, plan in ((PS2, PS2_PLAN), (PS3, PS3_PLAN)):
        for i, (student, cells) in enumerate(plan.items()):
            overrides = {c: wrong(ps, code).source for c, code in cells.items()}
            members[f"{student}_{200 + i}_{800 + i}_{ps}.ipynb"] = notebook(ps, overrides)
    zip_path = builders.lms_zip(members, root.parent / "lms.zip")
    collected = collect_mod.collect(course, zip_path)
    assert len(collected.placed) == len(members) and not collected.unmatched
    results = grade.autograde(course, [PS1, PS2, PS3], jobs=2, limits=Limits(timeout=300, memory_gb=4), progress=False)
    return course, {(r.ps, r.student): r for r in results}


def mistakes_csv(course: Course, ps: str) -> dict[tuple[str, str], dict]:
    report.report(course, ps)
    rows = list(csv.DictReader((course.reports / ps / "mistakes.csv").open()))
    return {(r["question"], r["mistake"]): r for r in rows}


def test_ps1_report_counts_every_injected_mistake_exactly(graded):
    course, results = graded
    assert all(results[(PS1, s)].status == "graded" for s in PS1_STUDENTS), {
        s: results[(PS1, s)].reason for s in PS1_STUDENTS
    }
    assert results[(PS1, "s0")].mistakes == {PS1: {}}
    rows = mistakes_csv(course, PS1)
    assert {key: int(row["students"]) for key, row in rows.items()} == ps1_expected()
    for (question, mistake), row in rows.items():
        assert float(row["share"]) == round(int(row["students"]) / len(PS1_STUDENTS), 4)
        if not mistake.startswith(
            "other"
        ):  # the catalogue's question of the code is the graded cell it was counted under
            assert question == "test_" + next(c for c, plan in PS1_PLAN.items() if mistake in plan), (question, mistake)
    # most common first within a question
    order = [
        (r["question"], int(r["students"])) for r in csv.DictReader((course.reports / PS1 / "mistakes.csv").open())
    ]
    for (q1, n1), (q2, n2) in zip(order, order[1:]):
        assert q1 < q2 or (q1 == q2 and n1 >= n2)
    page = (course.reports / PS1 / "index.html").read_text()
    for (question, mistake), n in ps1_expected().items():
        cells = f"<td>{html.escape(question)}</td><td><code>{html.escape(mistake)}</code></td>"
        assert cells in page, mistake
        assert re.search(re.escape(cells) + r"<td>[^<]*</td><td>" + str(n) + "</td>", page), (mistake, n)
    assert "other: RuntimeError: my own bug in attention_pairs" in page


def test_ps1_feedback_lists_each_students_own_mistakes_and_no_hidden_test(graded):
    course, _ = graded
    feedback_mod.feedback(course, [PS1])
    cat = feedback_mod.catalogue()
    hidden = hidden_lines(PS1)
    assert hidden
    for student in PS1_STUDENTS:
        page = (course.feedback / student / PS1 / f"{PS1}.html").read_text()
        summary = page[page.index("<div class='vitkit-summary'>") :]
        summary = summary[: summary.index("</div>")]
        mine = {
            plan[0] if student in plan[1] else plan[2] for plan in PS1_PLAN.values() if student in plan[1] + plan[3]
        }
        for code in mine:
            assert html.escape(cat[code].message) in summary and html.escape(cat[code].hint) in summary, (student, code)
        for plan in PS1_PLAN.values():
            for code in (plan[0], plan[2]):
                if code not in mine and cat[code].message not in (cat[c].message for c in mine):
                    assert html.escape(cat[code].message) not in summary, (student, code)
        for line in hidden:
            assert line not in page and html.escape(line) not in page, (student, line)
        assert "BEGIN HIDDEN" not in page and "Traceback (most recent call last)" not in page
    assert "my own bug in attention_pairs" in (course.feedback / "s8" / PS1 / f"{PS1}.html").read_text()
    assert "passed" in (course.feedback / "s0" / PS1 / f"{PS1}.html").read_text()


@pytest.mark.parametrize("ps, plan", [(PS2, PS2_PLAN), (PS3, PS3_PLAN)], ids=["ps2", "ps3"])
def test_ps2_ps3_report_names_one_mistake_per_graded_function(graded, ps, plan):
    course, results = graded
    rows = mistakes_csv(course, ps)
    for student, cells in plan.items():
        r = results[(ps, student)]
        assert r.status == "graded", r.reason
        found = {code for codes in r.mistakes[ps].values() for code, _ in codes}
        assert found == set(cells.values()), (student, r.mistakes[ps])
        for (
            cell,
            code,
        ) in cells.items():  # counted under that function's own test cells (visible and hidden), nowhere else
            assert code in {c for c, _ in r.mistakes[ps].get(f"test_{cell}", [])}, (student, cell, r.mistakes[ps])
            assert int(rows[(f"test_{cell}", code)]["students"]) == 1
            assert all(q == f"test_{cell}" or q.startswith(f"test_{cell}_") for q, m in rows if m == code), (
                code,
                list(rows),
            )
    assert not any(m.startswith("other") for _, m in rows), [k for k in rows if k[1].startswith("other")]


def test_a_mistake_in_an_earlier_part_is_counted_under_its_own_question_only(graded):
    """Issue 14's "done when": students who only got softmax wrong (the solution's self_attention calls their softmax)
    are not listed under self_attention and keep its points; the same for patchify -> PatchEmbedding and
    prepend_cls -> embed_image in PS3."""
    course, results = graded
    chains = [
        (PS1, "softmax", ["s1", "s2", "s3"], ["test_self_attention"]),
        (PS3, "patchify", ["u3"], ["test_embed", "test_pos_embed"]),
        (PS3, "cls", ["p3", "q3"], ["test_pos_embed"]),
    ]
    for ps, earlier, students, later in chains:
        rows = mistakes_csv(course, ps)
        for student in students:
            r = results[(ps, student)]
            own = {code for code, _ in r.mistakes[ps].get(f"test_{earlier}", [])}
            assert own and all(code.startswith(f"{ps[:3]}.{earlier}.") for code in own), (student, r.mistakes[ps])
            for question in later:
                assert not r.mistakes[ps].get(question), (student, question, r.mistakes[ps])
                score, top = r.scores[ps][question]
                assert score == top > 0, (student, question, r.scores[ps])
        for question in later:  # the report lists, under the later question, only mistakes made in it
            counted = {m for q, m in rows if q == question}
            assert all(m.startswith(f"{ps[:3]}.{question[5:]}.") for m in counted), (question, counted)
    sa = {m: int(row["students"]) for (q, m), row in mistakes_csv(course, PS1).items() if q == "test_self_attention"}
    assert sa == {"ps1.self_attention.no_scale": 2, "ps1.self_attention.weights_wrong_axis": 1}, sa


def test_catalogue_names_every_injected_mistake():
    """No grading: each WRONG injection of ps1-ps5 expects a code the catalogue defines, with a message and a hint."""
    from vitkit import grading

    codes = catalogue_codes()
    assert known_codes() == codes  # what grading workers read from the data module is the runtime catalogue
    folder = Path(grading.__file__).parent  # a problem set's checks: a module psN.py or a package psN/
    assert set(grading.PROBLEM_SETS) == {p.stem for p in folder.glob("ps*.py")} | {
        p.parent.name for p in folder.glob("ps*/__init__.py")
    }
    for ps in grading.PROBLEM_SETS:
        for inj in load(ps)[0]:
            assert inj.code in codes, (ps, inj.name)
            info = grading.CATALOGUE[inj.code]
            assert info.message.strip() and info.hint.strip(), inj.code
            if inj.code != "tampering":
                assert inj.code.startswith(f"{ps}.") and info.question == inj.code.rsplit(".", 1)[0], (
                    inj.code,
                    info.question,
                )


def test_the_catalogue_is_read_without_torch():
    """A grading worker reads the codes and messages from the catalogue's data module: no torch, no checks imported."""
    probe = (
        "import sys\nfrom vitkit.course.mistakes import catalogue, known_codes\n"
        "assert len(known_codes()) > 200 and catalogue()['ps1.softmax.wrong_axis'].hint\n"
        "assert 'torch' not in sys.modules and 'vitkit.grading' not in sys.modules, sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
