"""The course's own timings: autograding (one submission, a class with --jobs 2) and the notebooks' run times.

Sections ``grading`` and ``notebooks`` of ``vitkit bench`` (:mod:`vitkit.bench`).
"""

from __future__ import annotations

import statistics
import time


def grading(args) -> list[str]:
    """Autograding: one solution submission per problem set, and a class of 10 with --jobs 2 vs sequential nbgrader."""
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from vitkit.course import grade as course_grade
    from vitkit.course.confine import kernel_baseline_gb
    from vitkit.course.paths import Course, find_course
    from vitkit.course.sandbox import Limits, grade_submission

    repo = find_course(str(Path(__file__).parent))
    pss = repo.problem_sets()[:1] if args.quick else repo.problem_sets()
    lines = []
    with tempfile.TemporaryDirectory(prefix="vitkit-bench-") as tmp:
        root = Path(tmp) / "course"
        shutil.copytree(repo.source, root / "solutions")
        shutil.copy(repo.path("nbgrader_config.py"), root / "nbgrader_config.py")
        course = Course(str(root))

        def submit(ps: str, students: list[str]) -> None:  # each student hands in the solution notebook itself
            for s in students:
                shutil.rmtree(root / "submitted" / s, ignore_errors=True)
                shutil.copytree(root / "solutions" / ps, root / "submitted" / s / ps)

        for ps in pss:
            submit(ps, ["solo"])
            start = time.perf_counter()
            [r] = course_grade.autograde(course, [ps], students=["solo"], progress=False)
            lines.append(
                f"{ps}: one solution submission {time.perf_counter() - start:5.1f} s wall "
                f"({r.score:g}/{sum(t for c in r.scores.values() for _, t in c.values()):g} points, {r.status})   (target < 60 s)"
            )
        ps = pss[0]
        submit(ps, ["solo"])
        template, limits = course_grade.make_template(course, ps), Limits(baseline_gb=kernel_baseline_gb())
        course_grade._preload()
        times = []
        for _ in range(
            2 if args.quick else 5
        ):  # the task alone, as a worker runs it: the template is made once per class
            start = time.perf_counter()
            grade_submission(course, "solo", ps, limits, template)
            times.append(time.perf_counter() - start)
        lines.append(
            f"{ps}: one submission at a time, median of {len(times)}: {statistics.median(times):.2f} s "
            f"(min {min(times):.2f} s)   (was about 6 s before the kernel was confined apart from nbgrader)"
        )
        n = 4 if args.quick else 10
        students = [f"s{i:02d}" for i in range(n)]
        shutil.rmtree(root / "submitted", ignore_errors=True)
        submit(ps, students)
        bindir = str(Path(sys.executable).parent)
        env = dict(__import__("os").environ, PATH=bindir + ":" + __import__("os").environ["PATH"])
        course.gradebook.unlink(missing_ok=True)
        subprocess.run(
            [f"{bindir}/nbgrader", "generate_assignment", ps, "--force"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        start = time.perf_counter()
        subprocess.run(
            [f"{bindir}/nbgrader", "autograde", ps, "--force"], cwd=root, env=env, check=True, capture_output=True
        )
        sequential = time.perf_counter() - start
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url, "vitkit") as gb:
            plain = {s: gb.find_submission(ps, s).score for s in students}
        course.gradebook.unlink()
        start = time.perf_counter()
        results = course_grade.autograde(course, [ps], jobs=2, limits=Limits(), progress=False)
        parallel = time.perf_counter() - start
        ours = {r.student: r.score for r in results}
        lines += [
            f"{ps}, class of {n}: sequential `nbgrader autograde` {sequential:.1f} s, `vitkit course autograde --jobs 2` "
            f"{parallel:.1f} s (sandboxed, includes the LocalCluster start)",
            f"  speed-up {sequential / parallel:.2f}×   (target ≥ 1.6×); grades identical: {ours == plain}",
        ]
    return lines


def _execute_seconds(path, env: dict) -> float:
    """Wall seconds to run the notebook at ``path`` top to bottom in a fresh kernel (its own folder, outputs discarded)."""
    import nbformat

    from vitkit.tutorial import execute_notebook

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute_notebook(nb, path.parent, env, timeout=600)
    return time.perf_counter() - start


def notebooks(args) -> list[str]:
    """Each solution notebook and lecture 1-3 run top to bottom as a student runs them (full budget, fresh kernel)."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # the clone: vitkit/bench/course.py -> vitkit/bench -> vitkit -> .
    if not (root / "solutions").is_dir():
        return ["no solutions/ beside the installed package (run from a clone of the kit)"]
    env = {k: v for k, v in os.environ.items() if k not in ("VITKIT_QUICK", "NBGRADER_EXECUTION")}  # the full budget
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    cases = [(p, 60) for p in sorted((root / "solutions").glob("*/*.ipynb"))]
    cases += [(p, 120) for p in sorted((root / "lectures").glob("0[123]_*.ipynb"))]
    if args.quick:
        cases = cases[:1]
    lines = []
    for path, limit in cases:
        seconds = _execute_seconds(path, env)
        lines.append(
            f"  {path.relative_to(root)}: {seconds:5.1f} s   (target < {limit} s: {'met' if seconds < limit else 'NOT met'})"
        )
    return lines
