"""What the browser test needs: a JupyterLab server in a scratch course, Chromium, and a few page helpers.

- :func:`find_chromium` finds the system Chromium (Playwright's own browser download is not used);
- :func:`scratch_course` copies the course (``nbgrader_config.py``, ``exercises/``, ``solutions/``,
  ``lectures/``) to a scratch folder, so Validate and saving touch nothing in the repository;
- :class:`LabServer` runs the command of ``make lab`` (read with ``make -n``) there, on 127.0.0.1
  with a random free port and a token, and stops it by its own process group;
- :class:`Notebook` drives one notebook in the page: wait for an idle kernel, run all cells, press
  nbgrader's Validate and read the dialog, take screenshots.

Selectors are JupyterLab 4's and nbgrader 0.9's own class names and command ids
(``.validate-button``, ``#validation-message``, ``data-command="runmenu:run-all"``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Validate runs the whole notebook in a fresh kernel on a shared 2-core machine: minutes, not seconds.
VALIDATE_TIMEOUT_S = 600
KERNEL_TIMEOUT_S = 180
RUN_ALL_TIMEOUT_S = 600


def find_chromium() -> str | None:
    """Path of the system's Chromium (``$VITKIT_CHROMIUM`` first), or None when there is none."""
    candidates = [
        os.environ.get("VITKIT_CHROMIUM"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def scratch_course(dest: Path) -> Path:
    """Copy what a student's JupyterLab sees (config, exercises, solutions, lectures) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in ("exercises", "solutions", "lectures"):
        if (ROOT / folder).is_dir():
            shutil.copytree(
                ROOT / folder, dest / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
            )
    return dest


def fill_solutions(exercise: Path, solution: Path, out: Path) -> Path:
    """Write ``out``: the released ``exercise`` with each answer cell replaced by ``solution``'s.

    That is exactly what a student who solved everything submits: the release's locked cells and
    checksums stay as they are, only the solution cells (matched by ``grade_id``) change.
    """
    release = nbformat.read(exercise, as_version=4)
    source = nbformat.read(solution, as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    filled = 0
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
            filled += 1
    assert filled, f"{exercise} has no solution cells to fill"
    nbformat.write(release, out)
    return out


def graded_test_cells(path: Path) -> list[nbformat.NotebookNode]:
    """The autograded test cells of a notebook: graded code cells that are not answers."""
    nb = nbformat.read(path, as_version=4)
    return [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and c.metadata.get("nbgrader", {}).get("grade")
        and not c.metadata.get("nbgrader", {}).get("solution")
    ]


LAB_ARGS_MARK = "@LAB_ARGS@"
ROOT_MARK = "vitkit-browser-test.txt"  # not hidden: the server would not show it


def make_lab_command(env: dict) -> str:
    """The shell command ``make lab`` runs, read from the Makefile with ``make -n`` (nothing is run).

    The test starts exactly what a student's ``make lab`` starts (venv, PATH, environment, flags);
    its own settings (port, token, scratch state) come from a config file, not from ``LAB_ARGS``.
    """
    out = subprocess.run(
        ["make", "-n", "-s", "-C", str(ROOT), "lab", f"LAB_ARGS={LAB_ARGS_MARK}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lines = [line for line in out.stdout.splitlines() if "jupyter" in line and LAB_ARGS_MARK in line]
    assert out.returncode == 0 and len(lines) == 1, (
        f"`make -n lab` should show one jupyter command that ends with $(LAB_ARGS); it printed "
        f"(rc {out.returncode}):\n{out.stdout}{out.stderr}"
    )
    return lines[0].replace(LAB_ARGS_MARK, "")


def _die_with_parent() -> None:
    """In the server's process: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``make lab``'s command run in ``root`` (a scratch course), on 127.0.0.1 with a random port and token.

    Its Jupyter config and state live under ``state`` (nothing from ``~/.jupyter``); JupyterLab
    front-end extensions named in ``disabled_extensions`` are switched off the way an admin would
    (``labconfig/page_config.json``). The server's log goes to ``state/server.log``.
    """

    def __init__(self, root: Path, state: Path, disabled_extensions: tuple[str, ...] = ()):
        self.root, self.state = Path(root), Path(state)
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.state / "server.log"
        self.proc: subprocess.Popen | None = None
        self.disabled_extensions = disabled_extensions

    def env(self) -> dict:
        env = dict(os.environ)
        # What `make test` exports must not leak into the student's server: the `make lab` recipe alone
        # decides PATH additions and MPLBACKEND (a forced Agg backend would make every plt.show() in
        # JupyterLab draw nothing). A student's notebooks run at full budget; Validate sets
        # NBGRADER_EXECUTION itself.
        for name in (
            "MPLBACKEND",
            "VITKIT_QUICK",
            "NBGRADER_EXECUTION",
            "NBGRADER_VALIDATING",
            "MAKEFLAGS",
            "MFLAGS",
            "MAKELEVEL",
        ):
            env.pop(name, None)
        for name, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTER_DATA_DIR", "data"),
        ):
            env[name] = str(self.state / sub)
        env["IPYTHONDIR"] = str(self.state / "ipython")
        return env

    def start(self) -> "LabServer":
        config = self.state / "config"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        disabled = {name: True for name in self.disabled_extensions}
        # The news/announcements toast would ask the network and cover part of the page.
        disabled["@jupyterlab/apputils-extension:announcements"] = True
        (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
        # The test's settings go in a config file, not on the command line: the recipe's own flags
        # stay exactly as they are (a flag given twice is an error), and win where they overlap.
        (config / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {"ip": "127.0.0.1", "port": self.port, "port_retries": 0, "open_browser": False},
                    "IdentityProvider": {"token": self.token},
                    "LabApp": {
                        "user_settings_dir": str(self.state / "settings"),
                        "workspaces_dir": str(self.state / "workspaces"),
                    },
                }
            )
        )
        (self.root / ROOT_MARK).write_text("the browser test's scratch course\n")
        self.command = make_lab_command(self.env())
        log = open(self.log_path, "wb")
        log.write(f"$ {self.command}\n".encode())
        log.flush()
        # cwd = the scratch course root; nbgrader's Validate reads nbgrader_config.py from the cwd.
        self.proc = subprocess.Popen(
            ["bash", "-c", self.command],
            cwd=self.root,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`make lab`'s command exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
            except OSError:
                time.sleep(0.5)
                continue
            try:  # the server must serve the scratch course (its cwd), never the repository
                self.api("GET", f"/api/contents/{ROOT_MARK}?content=0")
            except OSError:
                self.stop()
                raise RuntimeError(
                    f"`make lab` serves another folder than its working directory "
                    f"({self.root}): drop --notebook-dir from the recipe; make runs it in "
                    f"the course root already.\n{self.log()}"
                ) from None
            return self
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer on {self.url} within 120 s:\n{self.log()}")

    def api(self, method: str, path: str, body: dict | None = None):
        """One authenticated REST call; returns the decoded JSON (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel the page started, so the next view does not share the CPU with it."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the server by its own process group: SIGTERM (it shuts its kernels down), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def notebook_url(self, path: str, workspace: str) -> str:
        # A workspace per view: the page opens just this notebook, not what an earlier view left open.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"


def _texts(locator) -> list[str]:
    # textContent, not innerText: JupyterLab skips rendering cells scrolled out of view
    # (content-visibility), and innerText of those is empty.
    return [t.strip() for t in locator.evaluate_all("els => els.map(e => e.textContent)")]


class Notebook:
    """One notebook open in a JupyterLab page."""

    def __init__(self, page, server: LabServer, path: str, workspace: str):
        self.page, self.server, self.path = page, server, path
        page.goto(server.notebook_url(path, workspace))
        self.panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)

    def kernel_dialog(self) -> str | None:
        """Text of a kernel dialog ("Select Kernel", "Kernel not found"...) if one is open."""
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count() and re.search(r"kernel", dialog.first.inner_text(), re.I):
            return dialog.first.inner_text()
        return None

    def kernel_status(self) -> str | None:
        return self.panel.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")

    def kernel_name(self) -> str:
        return " ".join(self.panel.locator(".jp-Toolbar-kernelName").all_inner_texts()).strip()

    def wait_idle_kernel(self, timeout_s: float = KERNEL_TIMEOUT_S) -> None:
        """Wait until the notebook's kernel is started and idle; fail on a kernel dialog.

        The toolbar says "idle" for a moment before any kernel exists, so the server must also
        report a kernel for this notebook, idle, and the toolbar must name it.
        """
        deadline = time.monotonic() + timeout_s
        status = name = None
        while time.monotonic() < deadline:
            dialog = self.kernel_dialog()
            assert dialog is None, f"{self.path}: JupyterLab asks about the kernel instead of starting it:\n{dialog}"
            kernels = [
                s["kernel"]
                for s in self.server.api("GET", "/api/sessions")
                if s.get("path") == self.path and s.get("kernel")
            ]
            status, name = self.kernel_status(), self.kernel_name()
            if (
                [k["execution_state"] for k in kernels] == ["idle"]
                and status == "idle"
                and name not in ("", "No Kernel", "Kernel")
            ):
                # JupyterLab quietly substitutes a kernel of the same language for a missing one.
                wanted = nbformat.read(self.server.root / self.path, as_version=4).metadata.get("kernelspec", {})
                assert kernels[0]["name"] == wanted.get("name"), (
                    f"{self.path} asks for the kernel {wanted.get('name')!r}, which is not installed; "
                    f"JupyterLab started {kernels[0]['name']!r} instead"
                )
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.path}: kernel not idle after {timeout_s} s (toolbar: {name!r}, {status!r})")

    def run_all(self, timeout_s: float = RUN_ALL_TIMEOUT_S) -> None:
        """Run > Run All Cells from the menu; wait until the run is over (finished, or stopped by an error).

        JupyterLab marks queued and running cells ``[*]``; when a cell fails, the rest are unqueued.
        So the run is over once no cell is ``[*]``, some cell has a number and the kernel is idle.
        """
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        prompts = self.panel.locator(".jp-CodeCell .jp-InputPrompt")
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while time.monotonic() < deadline:
            texts = _texts(prompts)
            over = (
                "[*]:" not in texts
                and any(re.fullmatch(r"\[\d+\]:", t) for t in texts)
                and self.kernel_status() == "idle"
            )
            quiet = quiet + 1 if over else 0
            if quiet >= 3:  # three looks a second apart: not the gap between two cells
                return
            time.sleep(1)
        raise AssertionError(f"{self.path}: Run All Cells still running after {timeout_s} s; prompts {texts}")

    def cells_not_run(self) -> list[int]:
        """Indices (among code cells) of the cells the last run did not reach."""
        texts = _texts(self.panel.locator(".jp-CodeCell .jp-InputPrompt"))
        return [i for i, t in enumerate(texts) if not re.fullmatch(r"\[\d+\]:", t)]

    def output_text(self) -> str:
        return "\n".join(_texts(self.panel.locator(".jp-OutputArea-output")))

    def validate(self, timeout_s: float = VALIDATE_TIMEOUT_S):
        """Press nbgrader's Validate and return the dialog's ``#validation-message`` locator.

        Validate saves the notebook, runs it in a fresh kernel on the server, and shows the result.
        """
        button = self.panel.locator(".jp-Toolbar .validate-button")
        try:
            button.wait_for(timeout=30_000)
        except PlaywrightTimeout:
            raise AssertionError(f"{self.path}: no Validate button in the notebook toolbar") from None
        inner = button.locator("button")  # JupyterLab's ToolbarButton: a <button> inside the classed wrapper
        (inner if inner.count() else button).click()
        message = self.page.locator(".jp-Dialog #validation-message")
        message.wait_for(timeout=timeout_s * 1000)
        return message

    def close_dialog(self) -> None:
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.locator(".jp-Dialog").wait_for(state="detached")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path
