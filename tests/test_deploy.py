"""The production form of the class hub (deploy/): checked as far as a machine without Docker or Kubernetes can.

What is checked: the Helm values parse and hang together (the exchange volume is mounted where the
image's nbgrader configuration looks; the pre-spawn hook compiles and names configuration folders that
exist), the Dockerfile copies and runs what the repository has, and the per-role Jupyter configuration
matches what ``vitkit course hub`` writes. Not run here: ``docker build`` and ``helm install``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from vitkit.course import hub

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def test_helm_values_parse_and_mount_the_exchange_where_nbgrader_looks():
    values = yaml.safe_load((DEPLOY / "z2jh-values.yaml").read_text())
    mounts = values["singleuser"]["storage"]["extraVolumeMounts"]
    config = (DEPLOY / "jupyter" / "nbgrader_config.py").read_text()
    root = re.search(r'c\.Exchange\.root = "([^"]+)"', config).group(1)
    assert [m["mountPath"] for m in mounts if m["name"] == "nbgrader-exchange"] == [root]
    volumes = {v["name"]: v for v in values["singleuser"]["storage"]["extraVolumes"]}
    assert volumes["nbgrader-exchange"]["persistentVolumeClaim"]["claimName"] == "nbgrader-exchange"
    hook = values["hub"]["extraConfig"]["vitkit-roles"]
    compile(hook, "vitkit-roles", "exec")
    for role in re.findall(r'"(instructor|student)"', hook):
        assert (DEPLOY / "jupyter" / role).is_dir(), role
    assert values["singleuser"]["defaultUrl"] == "/lab"


def test_dockerfile_builds_from_environment_yml_and_copies_what_exists():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "environment.yml" in text and "mamba env update" in text
    for path in re.findall(r"cp (/opt/vitkit/\S+)", text):
        assert (ROOT / path.removeprefix("/opt/vitkit/")).is_file(), path
    assert any(line.strip() == "- jupyterhub>=5" for line in (ROOT / "environment.yml").read_text().splitlines())


def test_per_role_configuration_matches_the_local_hub():
    student = json.loads((DEPLOY / "jupyter" / "student" / "labconfig" / "page_config.json").read_text())
    assert set(student["disabledExtensions"]) == set(hub.STUDENT_OFF_LAB)
    server = json.loads((DEPLOY / "jupyter" / "student" / "jupyter_server_config.json").read_text())
    assert {k for k, on in server["ServerApp"]["jpserver_extensions"].items() if not on} == set(hub.STUDENT_OFF_SERVER)
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader" / "static"
    if installed.is_dir():  # the plugin ids exist in the installed nbgrader labextension
        bundle = "".join(p.read_text(errors="ignore") for p in installed.glob("*.js"))
        assert all(f'"{plugin}"' in bundle for plugin in hub.STUDENT_OFF_LAB)
