"""A JupyterHub for one class on this machine: ``vitkit course hub`` (``make hub``).

Every user logs in with their local account (PAM) and gets JupyterLab from the kit's own environment
(``jupyterhub-singleuser`` of this interpreter's ``bin/``), started as that user (JupyterHub's
``LocalProcessSpawner``; the hub runs as root). nbgrader's exchange is a folder all of them reach.

- the **instructor** starts in their copy of the course (``~/<course>``, made from this course's
  ``solutions/``, ``exercises/`` and ``nbgrader_config.py`` the first time) with nbgrader's formgrader,
  and runs ``vitkit course release --exchange``, ``collect --exchange``, ``autograde``,
  ``feedback --release`` there (a terminal in JupyterLab, or ``vitkit course --root ~instructor/<course>``);
- **students** start in their home with the Assignment List and Validate; formgrader, the course list
  and the create-assignment toolbar are switched off for them (server and JupyterLab extensions).

Everything the hub writes lives in ``--state`` (default ``/srv/vitkit-hub``): ``jupyterhub_config.py``,
its database and cookie secret, the per-role Jupyter configuration (``config/instructor``,
``config/student``) and the exchange (``exchange/``). Local accounts that do not exist are created
(``useradd``; ``--password`` sets every account's password, or one is made up and printed). For a real
course use zero-to-jupyterhub on Kubernetes instead: see the README and ``deploy/``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vitkit.course.paths import Course

BIN = Path(sys.executable).parent
GECOS = "vitkit class hub"  # the comment of accounts this module created (and may therefore reuse)
STUDENT_OFF_SERVER = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
STUDENT_OFF_LAB = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:create-assignment",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit course hub``."""
    parser.add_argument(
        "--instructor", default="instructor", help="the instructor's local account (default instructor)"
    )
    parser.add_argument(
        "--students", default="student1,student2", help="comma-separated local accounts of the students"
    )
    parser.add_argument("--password", help="password of accounts created now (default: made up and printed)")
    parser.add_argument("--ip", default="127.0.0.1", help="address the hub listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--state", default="/srv/vitkit-hub", help="the hub's folder: configuration, database, exchange"
    )
    parser.add_argument("--check", action="store_true", help="only say what is missing for a hub here")


def proxy_command() -> str | None:
    """configurable-http-proxy: the one ``make hub`` installs (``.venv/node/bin``) or one on PATH."""
    return shutil.which(
        "configurable-http-proxy", path=os.pathsep.join([str(BIN.parent / "node" / "bin"), os.environ.get("PATH", "")])
    )


def missing_pieces() -> list[str]:
    """What this machine lacks for a local class hub, each with the fix (empty: nothing)."""
    out = []
    if not (BIN / "jupyterhub").is_file() or not (BIN / "jupyterhub-singleuser").is_file():
        out.append(f"JupyterHub is not installed in {BIN.parent}: `make hub` (or pip install -e '.[hub]')")
    if proxy_command() is None:
        out.append(
            "configurable-http-proxy is not installed: `make hub` installs it with npm (needs Node.js: apt-get install nodejs npm)"
        )
    if shutil.which("node") is None:
        out.append("Node.js is missing (configurable-http-proxy runs on it): apt-get install nodejs")
    if os.geteuid() != 0:
        out.append("the hub must run as root: it logs users in with PAM and starts each user's server as that user")
    for tool in ("useradd", "chpasswd", "runuser"):
        if shutil.which(tool) is None:
            out.append(f"{tool} is missing: the local accounts of the class cannot be made")
    return out


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_user(name: str, password: str | None) -> bool:
    """Create the local account ``name`` (home, bash) unless it exists; set ``password`` if given. True if created."""
    created = not user_exists(name)
    if created:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", "--comment", GECOS, name],
            check=True,
            capture_output=True,
        )
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
    return created


def can_reach(user: str, path: Path) -> bool:
    """Whether ``user`` can run/read ``path`` (every folder above it must let them through)."""
    return subprocess.run(["runuser", "-u", user, "--", "test", "-r", str(path)], capture_output=True).returncode == 0


@dataclass
class ClassHub:
    """One class's hub: who is in it, where its state lives, how to start it."""

    course: Course
    state: Path
    instructor: str
    students: list[str]
    ip: str = "127.0.0.1"
    port: int = 8000  # the proxy's public port; the hub's own API and the proxy's API use the next two
    created: list[str] = field(default_factory=list)  # accounts this hub made (a test removes them afterwards)

    @property
    def exchange(self) -> Path:
        return self.state / "exchange"

    @property
    def instructor_course(self) -> Path:
        """The instructor's copy of the course, in their home."""
        from vitkit.course.exchange import course_id

        return Path(pwd.getpwnam(self.instructor).pw_dir) / course_id(self.course)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def prepare(self, password: str | None = None) -> dict[str, str]:
        """Accounts, the instructor's course, the exchange and the configuration; returns passwords set now."""
        missing = missing_pieces()
        if missing:
            raise SystemExit("cannot start a class hub here:\n  " + "\n  ".join(missing))
        passwords = {}
        for name in [self.instructor, *self.students]:
            new_password = password or (secrets.token_urlsafe(9) if not user_exists(name) else None)
            if ensure_user(name, new_password):
                self.created.append(name)
            if new_password:
                passwords[name] = new_password
        for path in (BIN / "jupyterhub-singleuser", Path(sys.executable)):
            if not can_reach(self.students[0], path):
                raise SystemExit(
                    f"{self.students[0]} cannot reach {path}: every user's server runs from the kit's environment; "
                    f"let them through (chmod o+rx on the folders above it) or install the kit under /opt or /srv"
                )
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o755)
        self.exchange.mkdir(exist_ok=True)
        self.exchange.chmod(0o1777)  # every user may write (nbgrader's 0777), and only remove their own (sticky)
        self._course_copy()
        self._write_config()
        return passwords

    def _course_copy(self) -> None:
        dest = self.instructor_course
        if not dest.exists():
            src = Path(self.course.root)
            dest.mkdir()
            for name in ("solutions", "exercises"):
                shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
            for name in ("nbgrader_config.py", "roster.csv"):
                if (src / name).is_file():
                    shutil.copy(src / name, dest / name)
        owner = pwd.getpwnam(self.instructor)
        subprocess.run(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(dest)], check=True)

    def _write_config(self) -> None:
        import json

        from vitkit.course.exchange import course_id

        cid = course_id(self.course)
        for role in ("instructor", "student"):
            folder = self.state / "config" / role
            (folder / "labconfig").mkdir(parents=True, exist_ok=True)
            lines = [f"c.Exchange.root = {str(self.exchange)!r}", f"c.CourseDirectory.course_id = {cid!r}"]
            if role == "instructor":
                lines.append(f"c.CourseDirectory.root = {str(self.instructor_course)!r}")
            (folder / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
            off = role == "student"
            (folder / "jupyter_server_config.json").write_text(
                json.dumps(
                    {"ServerApp": {"jpserver_extensions": {name: not off for name in STUDENT_OFF_SERVER}}}, indent=1
                )
            )
            (folder / "labconfig" / "page_config.json").write_text(
                json.dumps({"disabledExtensions": {name: True for name in STUDENT_OFF_LAB} if off else {}}, indent=1)
            )
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        (self.state / "jupyterhub_config.py").write_text(
            HUB_CONFIG.format(
                ip=self.ip,
                port=self.port,
                api_port=self.port + 2,
                state=str(self.state),
                proxy=proxy_command(),
                bin=str(BIN),
                instructor=self.instructor,
                users=sorted([self.instructor, *self.students]),
                instructor_course=str(self.instructor_course),
            )
        )

    def command(self) -> list[str]:
        """The command that runs the hub (in the foreground)."""
        return [str(BIN / "jupyterhub"), "-f", str(self.state / "jupyterhub_config.py")]


HUB_CONFIG = '''# Written by `vitkit course hub` (vitkit/course/hub.py); changes here are lost when it runs again.
import os

c = get_config()  # noqa: F821
c.JupyterHub.ip = {ip!r}
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {port} + 1
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"

# Local accounts, logged in with their passwords (PAM); each user's server runs as that user.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set({users!r})
c.Authenticator.admin_users = {{{instructor!r}}}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{bin}/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def per_role(spawner):
    """The instructor starts in their course with formgrader; students in their home without it."""
    role = "instructor" if spawner.user.name == {instructor!r} else "student"
    spawner.environment["JUPYTER_CONFIG_PATH"] = "{state}/config/" + role
    spawner.environment["PATH"] = "{bin}:/usr/local/bin:/usr/bin:/bin"
    spawner.environment["MPLBACKEND"] = "Agg"
    if role == "instructor":
        spawner.notebook_dir = {instructor_course!r}


c.Spawner.pre_spawn_hook = per_role
'''


def main(course: Course, args: argparse.Namespace) -> int:
    """``vitkit course hub``: prepare the class and run the hub until Ctrl-C."""
    if args.check:
        missing = missing_pieces()
        print("\n".join(missing) if missing else "everything a class hub needs is here")
        return 1 if missing else 0
    hub = ClassHub(
        course, Path(args.state), args.instructor, [s for s in args.students.split(",") if s], args.ip, args.port
    )
    passwords = hub.prepare(args.password)
    print(f"vitkit: class hub at {hub.url} (state in {hub.state}, exchange {hub.exchange})")
    print(f"  instructor: {hub.instructor} (course in {hub.instructor_course}); students: {', '.join(hub.students)}")
    for name, password in passwords.items():
        print(f"  password of {name}: {password}")
    print(f"  release to students: vitkit course --root {hub.instructor_course} release PS --exchange {hub.exchange}")
    return subprocess.run(hub.command(), cwd=hub.state).returncode
