"""The classroom round trip on a real JupyterHub, in a real browser.

``vitkit course hub``'s hub (PAM logins, each user's server as that user, nbgrader's exchange) on
loopback, with an instructor and two students as local accounts made for the test (and removed
after it, when the test made them). The instructor releases problem set 1 with the kit's CLI; each
student logs in in Chromium, fetches it in the Assignment List, fills it (``alice`` like the
solution, ``bob`` with one wrong answer; the notebook is written into their home as them, typing
it would only test the editor), validates, submits; the instructor collects, autogrades, grades the
written answer in formgrader, releases feedback; each student fetches and reads their own feedback
and cannot open the other's; the exported CSV holds both grades.

Skips, with the reason, only where the hub's pieces are missing (JupyterHub, configurable-http-proxy,
Node.js, Chromium, root for PAM and local accounts). Needs no network.

The kit's interpreter must be reachable by the students' accounts. Where a folder above it is closed
to other users (a checkout or Python under ``/root``), the test opens it for traversal (``o+x``) while
it runs and puts the mode back afterwards.
"""

from __future__ import annotations

import csv
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser_util import CHROMIUM_ARGS, SCREENSHOTS, Notebook, fill_solutions, find_chromium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PS = "ps1_self_attention"
NB = f"{PS}/{PS}.ipynb"
WRITTEN = "written_order"
TEACHER, STUDENTS = "vkhub-teacher", ("vkhub-alice", "vkhub-bob")
PASSWORD = "vitkit-class-hub-test"
BOB_WRITTEN = "The order does not matter to attention, I think. BOB-WRITTEN-ANSWER"
BOB_WRONG = ("answer_why_scaling", 'why_scaling = "a"\n')  # one wrong multiple-choice answer: 1 point lost


def _free_ports(n: int) -> int:
    """A port p with p, p + 1, ..., p + n - 1 free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports on 127.0.0.1")


def _open_for_traversal(paths: list[Path]) -> list[tuple[Path, int]]:
    """Add o+x to every folder above ``paths`` that lacks it; returns (folder, old mode) to put back."""
    changed = []
    for path in paths:
        for folder in reversed(Path(path).resolve().parents):
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH and folder not in [c[0] for c in changed]:
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                changed.append((folder, stat.S_IMODE(mode)))
    return changed


def _run_cli(*argv: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", MPLBACKEND="Agg")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "vitkit"), "course", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"vitkit course {' '.join(argv)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _as_user(name: str, path: Path) -> None:
    u = pwd.getpwnam(name)
    subprocess.run(["chown", "-R", f"{u.pw_uid}:{u.pw_gid}", str(path)], check=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from vitkit.course import hub as hub_mod
    from vitkit.course.paths import Course

    chromium = find_chromium()
    missing = hub_mod.missing_pieces() + ([] if chromium else ["no Chromium (apt-get install chromium)"])
    if missing:
        pytest.skip("the class hub cannot run here: " + "; ".join(missing))
    for name in (TEACHER, *STUDENTS):
        if hub_mod.user_exists(name) and pwd.getpwnam(name).pw_gecos != hub_mod.GECOS:
            pytest.fail(
                f"a local account {name} exists that this test did not make; remove it or rename the test's accounts"
            )
    state = Path(tempfile.mkdtemp(prefix="vitkit-hub-"))  # not under pytest's 0700 folder: every user reaches it
    opened = _open_for_traversal([Path(sys.executable), Path(sys.executable).parent, ROOT / "vitkit"])
    h = hub_mod.ClassHub(Course(str(ROOT)), state, TEACHER, list(STUDENTS), port=_free_ports(3))
    proc = None
    try:
        h.prepare(PASSWORD)
        log = open(state / "hub.log", "w")
        proc = subprocess.Popen(h.command(), cwd=state, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{h.url}/hub/api", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, f"the hub exited:\n{(state / 'hub.log').read_text()[-4000:]}"
                assert time.monotonic() < deadline, (
                    f"the hub did not answer:\n{(state / 'hub.log').read_text()[-4000:]}"
                )
                time.sleep(0.5)
        yield h, chromium
    finally:
        if proc is not None:
            proc.terminate()  # JupyterHub stops the users' servers on its way out
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        for name in h.created:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for folder, mode in reversed(opened):
            folder.chmod(mode)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(hub):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=hub[1], headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Session:
    """One user's browser context, logged in to the hub."""

    def __init__(self, browser, hub, name: str):
        self.hub, self.name = hub, name
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.goto(f"{hub.url}/hub/login")
        self.page.fill("#username_input", name)
        self.page.fill("#password_input", PASSWORD)
        self.page.click("#login_submit")
        self.page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=180_000)
        self.page.locator(".jp-LabShell").wait_for(timeout=180_000)

    @property
    def base(self) -> str:
        return f"{self.hub.url}/user/{self.name}"

    def assignment_list(self):
        self.page.goto(f"{self.base}/lab")
        self.page.locator(".jp-LabShell").wait_for(timeout=120_000)
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).click()
        self.page.locator(".lm-Menu-item", has_text="Assignment List").click()
        panel = self.page.locator(".nbgrader-assignment-list, #nbgrader-assignment-list").first
        panel.wait_for(timeout=60_000)
        return panel

    def click_in(self, section: str, label: str) -> None:
        """Press ``label`` on problem set 1's row of the Assignment List's ``section`` (released, fetched, submitted)."""
        button = self.page.locator(f"#{section}_assignments_list button", has_text=re.compile(rf"^{label}$"))
        button.first.wait_for(timeout=60_000)
        button.first.click()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"hub-{name}.png"))

    def close(self) -> None:
        self.context.close()


class HubNotebook(Notebook):
    """A notebook of a user's server on the hub (Notebook's helpers, opened by URL)."""

    def __init__(self, session: Session, path: str):
        self.page, self.server, self.path = session.page, None, path
        session.page.goto(f"{session.base}/lab/tree/{path}")
        self.panel = session.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)


def _student_notebook(name: str) -> Path:
    return Path(pwd.getpwnam(name).pw_dir) / NB


def _fill(name: str, mistakes: dict[str, str], written: str | None) -> None:
    """Write the student's answers into their fetched notebook, as they would have typed them (owned by them)."""
    import nbformat

    path = _student_notebook(name)
    fill_solutions(path, ROOT / "solutions" / NB, path)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in mistakes:
            cell.source = mistakes[gid]
        if gid == WRITTEN and written is not None:
            cell.source = written
    nbformat.write(nb, path)
    _as_user(name, path)


def _gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", "vitkit")


def test_a_class_round_trip_on_the_hub(hub, browser):
    h, _ = hub
    course = h.instructor_course
    out = _run_cli("--root", str(course), "release", PS, "--exchange", str(h.exchange))
    assert (h.exchange / "vitkit" / "outbound" / PS / f"{PS}.ipynb").is_file(), out
    _as_user(TEACHER, course)

    # Students: fetch, fill, validate, submit, all in their own JupyterLab.
    validated = {}
    for name, mistakes, written in ((STUDENTS[0], {}, None), (STUDENTS[1], dict([BOB_WRONG]), BOB_WRITTEN)):
        s = Session(browser, h, name)
        try:
            s.assignment_list()
            s.click_in("released", "Fetch")
            s.page.locator("#fetched_assignments_list button", has_text="Submit").first.wait_for(timeout=60_000)
            assert _student_notebook(name).is_file(), f"{name}: Fetch put nothing in their home"
            _fill(name, mistakes, written)
            nb = HubNotebook(s, NB)
            message = nb.validate()
            validated[name] = message.get_attribute("class").split()
            s.screenshot(f"validate-{name}")
            nb.close_dialog()
            s.assignment_list()
            s.click_in("fetched", "Submit")
            s.page.locator("#submitted_assignments_list .item_name").first.wait_for(timeout=60_000)
            s.screenshot(f"submitted-{name}")
        finally:
            s.close()
    assert "validation-success" in validated[STUDENTS[0]] and "validation-failed" in validated[STUDENTS[1]], validated

    # Instructor: collect and autograde with the kit, then grade the written answers in formgrader.
    out = _run_cli("--root", str(course), "collect", PS, "--exchange", str(h.exchange))
    assert "2 placed" in out, out
    _run_cli("--root", str(course), "autograde", PS)
    _as_user(TEACHER, course)
    assert "needs manual grading" in _run_cli("--root", str(course), "status")
    with _gradebook(course) as gb:
        ids = {n: gb.find_submission_notebook(PS, PS, n).id for n in STUDENTS}
    t = Session(browser, h, TEACHER)
    try:
        for name, points in zip(STUDENTS, ("2", "1")):
            t.page.goto(f"{t.base}/formgrader/submissions/{ids[name]}/")
            score = t.page.locator(f"input.score#{WRITTEN}")
            score.wait_for(timeout=60_000)
            t.page.wait_for_load_state("networkidle")  # formgrader binds its save handlers once its models load
            with t.page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT"):
                score.fill(points)
                score.press("Tab")  # formgrader saves on change
            t.screenshot(f"formgrader-{name}")
    finally:
        t.close()
    with _gradebook(course) as gb:
        manual = {n: gb.find_grade(WRITTEN, PS, PS, n).manual_score for n in STUDENTS}
    assert manual == {STUDENTS[0]: 2.0, STUDENTS[1]: 1.0}
    out = _run_cli("--root", str(course), "feedback", PS, "--release", "--exchange", str(h.exchange))
    assert "feedback released to 2 students" in out, out
    _as_user(TEACHER, course)

    # Students: fetch their feedback and read it; the other's is out of reach.
    pages = {}
    for name in STUDENTS:
        s = Session(browser, h, name)
        try:
            s.assignment_list()
            s.click_in("submitted", "Fetch Feedback")
            s.page.locator("#submitted_assignments_list a", has_text="view feedback").first.wait_for(timeout=60_000)
            found = sorted(Path(pwd.getpwnam(name).pw_dir, PS, "feedback").glob(f"*/{PS}.html"))
            assert len(found) == 1, found
            rel = found[0].relative_to(pwd.getpwnam(name).pw_dir)
            s.page.goto(f"{s.base}/files/{rel}")
            pages[name] = s.page.locator("body").inner_text()
            s.screenshot(f"feedback-{name}")
            other = next(o for o in STUDENTS if o != name)
            response = s.page.goto(f"{h.url}/user/{other}/files/{rel}")
            assert response.status in (403, 404) or "BOB-WRITTEN" not in s.page.content(), (name, response.status)
        finally:
            s.close()
    alice, bob = pages[STUDENTS[0]], pages[STUDENTS[1]]
    assert f"{PS}: 19 / 19" in alice and "BOB-WRITTEN-ANSWER" not in alice, alice[:2000]
    assert f"{PS}: 17 / 19" in bob and "BOB-WRITTEN-ANSWER" in bob, bob[:2000]

    _run_cli("--root", str(course), "export")
    rows = {r["student"]: r for r in csv.DictReader((course / "reports" / "grades.csv").open())}
    assert {n: (rows[n][PS], rows[n][f"written:{PS}"]) for n in STUDENTS} == {
        STUDENTS[0]: ("19.0", "2.0"),
        STUDENTS[1]: ("17.0", "1.0"),
    }, rows
