"""What students see: JupyterLab with nbgrader's Validate and the ipywidgets explorer, in a real browser.

One JupyterLab server (the command ``make lab`` runs, read with ``make -n``, started in a scratch
copy of the course) and one headless Chromium serve the whole module. Each view leaves a screenshot under
``build/screenshots/``. The module skips only when no Chromium can be found
(``apt-get install chromium``); everything else that goes wrong is a failure.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest

from tests.browser_util import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    LabServer,
    Notebook,
    fill_solutions,
    find_chromium,
    graded_test_cells,
    scratch_course,
)
from vitkit.course.mistakes import catalogue

pytestmark = pytest.mark.slow
CATALOGUE = catalogue()

PS1 = "exercises/ps1_self_attention/ps1_self_attention.ipynb"
PS1_SOURCE = "solutions/ps1_self_attention/ps1_self_attention.ipynb"
PS1_SOLVED = "exercises/ps1_self_attention/ps1_self_attention_solved.ipynb"  # scratch copy, never in the repo
LECTURE1 = "lectures/01_self_attention.ipynb"

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium found (looked for $VITKIT_CHROMIUM, /usr/bin/chromium, chromium on PATH): "
            "install it with `apt-get install chromium` to run the browser test"
        )
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = scratch_course(tmp_path_factory.mktemp("course"))
    fill_solutions(root / PS1, root / PS1_SOURCE, root / PS1_SOLVED)
    return root


@pytest.fixture(scope="module")
def lab(chromium, course, tmp_path_factory):
    server = LabServer(course, tmp_path_factory.mktemp("jupyter")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        yield page
    finally:
        # How the page looked when the test ended: the first thing to look at when it failed.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"end-{request.node.name}.png"))
        finally:
            context.close()
        lab.shutdown_kernels()  # the next view gets the CPU to itself


def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _failed_sources(message) -> list[str]:
    """The sources nbgrader's dialog lists under "The following cell failed:"."""
    sources = message.evaluate("""m => [...m.querySelectorAll('p')]
        .filter(p => p.innerText.trim() === 'The following cell failed:')
        .map(p => p.parentElement.nextElementSibling.querySelector('pre').innerText)""")
    return [_normalise(s) for s in sources]


def test_validate_blank_exercise_names_its_failing_tests(page, lab, course):
    nb = Notebook(page, lab, PS1, "blank")
    nb.wait_idle_kernel()
    nb.screenshot("ps1-exercise")
    message = nb.validate()
    nb.screenshot("ps1-validate-blank")
    text = message.inner_text()
    assert "validation-failed" in message.get_attribute("class").split(), f"Validate of the blank exercise:\n{text}"
    tests = [_normalise(c.source) for c in graded_test_cells(course / PS1)]
    assert tests, f"{PS1} has no graded test cells"
    # nbgrader also lists a written answer (a manually graded markdown cell) left as "YOUR ANSWER HERE"
    written = [
        _normalise(c.source)
        for c in nbformat.read(course / PS1, as_version=4).cells
        if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")
    ]
    failed = _failed_sources(message)
    assert sorted(failed) == sorted(tests + written), (
        f"the dialog should list exactly the {len(tests)} test cells and {len(written)} written answers of the blank "
        f"exercise as failing; it lists {len(failed)}:\n{text[:3000]}"
    )
    assert "NotImplementedError" in text, f"the failures should come from the unanswered cells:\n{text[:3000]}"
    # The message is what the student reads first (issue 14): each named mistake's hint in full (wrapped, never
    # cut with "..."), and neither the grader's frames nor a file path.
    flat = " ".join(text.split())
    codes = set(re.findall(r"\[([A-Za-z0-9_.]+)\]", text)) & set(CATALOGUE)
    assert codes, f"no named mistake in the dialog:\n{text[:3000]}"
    for code in codes:
        hint = " ".join(CATALOGUE[code].hint.split())
        assert f"Hint: {hint}" in flat, f"the hint of [{code}] is not whole in Validate's dialog:\n{text[:3000]}"
    assert "vitkit/grading" not in text and "_student_facing" not in text and "site-packages" not in text, text[:3000]
    widths = message.evaluate("m => [...m.querySelectorAll('pre')].map(p => [p.scrollWidth, p.clientWidth])")
    assert all(scroll <= client + 1 for scroll, client in widths), f"a line runs off Validate's dialog: {widths}"
    # The end of the first failure is the message a student reads: show it in a second screenshot.
    message.evaluate("m => m.querySelectorAll('.jp-RenderedText pre')[1].scrollIntoView({block: 'end'})")
    nb.screenshot("ps1-validate-blank-message")
    nb.close_dialog()


def test_validate_solved_exercise_succeeds_with_every_cell_run(page, lab):
    nb = Notebook(page, lab, PS1_SOLVED, "solved")
    nb.wait_idle_kernel()
    log_before = len(lab.log())
    message = nb.validate()
    nb.screenshot("ps1-validate-solved")
    text = message.inner_text()
    assert "validation-success" in message.get_attribute("class").split(), f"Validate of the solved exercise:\n{text}"
    assert "Success! Your notebook passes all the tests." in text
    # nbgrader interrupts a cell that runs past Execute.timeout and says nothing in the dialog unless
    # that cell is a graded test; its executor logs it in the server's log, so look there.
    log = lab.log()[log_before:]
    for sign in ("Timeout waiting for execute reply", "Interrupting kernel", "CellTimeoutError"):
        assert sign not in log, f"Validate interrupted a cell (nbgrader's Execute.timeout too short):\n{log[-3000:]}"
    nb.close_dialog()


def _notebook_draws_figures(path) -> bool:
    return any(
        c.cell_type == "code" and re.search(r"\bplt\.|\bmatplotlib\b", c.source)
        for c in nbformat.read(path, as_version=4).cells
    )


def test_lecture1_attention_explorer_renders_and_reacts(page, lab, course):
    nb = Notebook(page, lab, LECTURE1, "lecture1")
    nb.wait_idle_kernel()
    nb.run_all()
    outputs = nb.output_text()
    assert "Error displaying widget" not in outputs, f"{LECTURE1}: a widget did not render:\n{outputs[-3000:]}"
    assert "Traceback (most recent call last)" not in outputs, f"{LECTURE1}: a cell failed:\n{outputs[-3000:]}"
    assert not nb.cells_not_run(), f"{LECTURE1}: Run All did not reach code cells {nb.cells_not_run()}"
    if _notebook_draws_figures(course / LECTURE1):
        assert nb.panel.locator(".jp-OutputArea-output.jp-RenderedImage img").count() >= 1, (
            f"{LECTURE1} plots with matplotlib but no figure appeared in JupyterLab (a non-inline MPLBACKEND?)"
        )

    # vitkit.widgets.attention_explorer marks its parts with CSS classes for this test.
    explorers = nb.panel.locator(".jp-OutputArea-output .vitkit-attention-explorer")
    assert explorers.count() >= 1, (
        f"{LECTURE1}: no attention explorer rendered (ipywidgets front-end missing or "
        f"not matching?); the outputs read:\n{outputs[-3000:]}"
    )
    explorer = explorers.first
    query = explorer.locator(".vitkit-query select")
    scale = explorer.locator(".vitkit-scale input[type=checkbox]")
    table = explorer.locator(".vitkit-attention-table")
    for part, name in ((query, "query dropdown"), (scale, "scaling checkbox"), (table, "attention table")):
        assert part.count() == 1, f"{LECTURE1}: the explorer has no {name}:\n{explorer.inner_text()}"
    explorer.scroll_into_view_if_needed()
    nb.screenshot("lecture1-explorer")

    def changed(before: str) -> str:
        deadline = time.monotonic() + 60  # the kernel answers the change; on a busy CPU it may take a while
        while time.monotonic() < deadline:
            after = table.inner_text()
            if after != before:
                return after
            time.sleep(0.3)
        raise AssertionError(f"{LECTURE1}: changing the explorer's control did not change its table:\n{before}")

    before = table.inner_text()
    # ipywidgets writes option labels with non-breaking spaces
    labels = [t.replace("\xa0", " ") for t in query.locator("option").all_inner_texts()]
    current = labels[query.evaluate("s => s.selectedIndex")]
    assert len(labels) > 1 and f"query of {current}" in before, f"{LECTURE1}: explorer shows\n{before}\n{labels}"
    pick = len(labels) - 1 if labels[-1] != current else 0
    query.select_option(index=pick)
    other = labels[pick]
    after = changed(before)
    assert f"query of {other}" in after, f"{LECTURE1}: picked {other!r}, the explorer shows:\n{after}"
    assert "not scaled" not in after
    scale.click()
    unscaled = changed(after)
    assert "not scaled" in unscaled, f"{LECTURE1}: unticked the scaling, the explorer shows:\n{unscaled}"
    nb.screenshot("lecture1-explorer-changed")
