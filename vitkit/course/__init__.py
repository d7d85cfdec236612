"""``vitkit course``: the instructor's CLI over nbgrader, from an LMS zip to grades, feedback and a report.

    vitkit course release [PS] [--check]          exercises/ from solutions/ (--check: fail if they differ)
    vitkit course collect --from DIR|ZIP          submissions into submitted/<student>/<ps>/
    vitkit course autograde [PS] [--jobs N] ...   grade every submission, each in its own sandbox, on Dask
    vitkit course feedback [PS]                   feedback/<student>/<ps>/*.html (no hidden tests)
    vitkit course export [--format csv|canvas]    grades.csv for the LMS
    vitkit course report [PS]                     reports/<ps>/index.html: mistakes per question, histograms
    vitkit course status                          what has been collected, graded, and what failed

Modules: ``paths`` (the layout), ``collect``, ``sandbox`` (grading one submission), ``grade``
(release and the coordinator), ``feedback`` (feedback and export), ``report``, ``check`` (students).
"""

from __future__ import annotations

import argparse
import sys

from vitkit.course.paths import Course, find_course


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit course``."""
    parser.add_argument("--root", help="the course folder (default: the folder with nbgrader_config.py at or above the working folder)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    p.add_argument("ps", nargs="*", help="problem sets (default: all)")
    p.add_argument("--check", action="store_true", help="change nothing; fail if exercises/ differs from what release makes")
    p = sub.add_parser("collect", help="put submissions from a folder or an LMS zip into submitted/")
    p.add_argument("--from", dest="source", required=True, metavar="DIR|ZIP")
    p = sub.add_parser("autograde", help="grade every submission in its own sandbox")
    p.add_argument("ps", nargs="*", help="problem sets (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="Dask worker processes on this machine (default 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp://host:8786) to send the tasks to")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: Execute.timeout of nbgrader_config.py, or 300)")
    p.add_argument("--memory", type=float, default=4.0, metavar="GB", help="memory per submission, on top of what the kernel's libraries map (default 4)")
    p.add_argument("--wall", type=int, default=None, help="seconds for one whole submission (default 3 × timeout + 120)")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p = sub.add_parser("feedback", help="HTML feedback per student, hidden tests removed")
    p.add_argument("ps", nargs="*")
    p = sub.add_parser("export", help="grades as CSV for an LMS")
    p.add_argument("--format", choices=["csv", "canvas"], default="csv")
    p.add_argument("--output", "-o", default=None, help="file to write (default reports/grades.csv or reports/canvas.csv)")
    p.add_argument("ps", nargs="*")
    p = sub.add_parser("report", help="per-question mistakes and score histograms")
    p.add_argument("ps", nargs="*")
    sub.add_parser("status", help="submissions collected, graded, failed")


def config_timeout(course: Course) -> int:
    """``Execute.timeout`` from the course's nbgrader_config.py (300 when it sets none)."""
    import re

    text = course.path("nbgrader_config.py").read_text() if course.path("nbgrader_config.py").is_file() else ""
    m = re.search(r"^c\.Execute\.timeout\s*=\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 300


def main(args: argparse.Namespace) -> int:
    """Run one ``vitkit course`` action."""
    course = Course(args.root) if args.root else find_course()
    action = args.action
    if action == "release":
        from vitkit.course.grade import release, release_differences

        bad = 0
        for ps in course.resolve(args.ps):
            if args.check:
                diff = release_differences(course, ps)
                if diff:
                    bad += 1
                    print(f"{ps}: exercises/ differs from solutions/ in {', '.join(diff)}; run `vitkit course release {ps}` and commit")
                else:
                    print(f"{ps}: exercises/ is up to date")
            else:
                release(course, ps)
                print(f"{ps}: released to {course.release / ps}")
        return 1 if bad else 0
    if action == "collect":
        from vitkit.course.collect import collect

        done = collect(course, args.source)
        per_ps = {}
        for p in done.placed:
            per_ps[p["ps"]] = per_ps.get(p["ps"], 0) + 1
        for ps, n in sorted(per_ps.items()):
            print(f"{ps}: {n} submissions")
        for p in done.placed:
            if p["late"] or p["matched_by"] != "name":
                print(f"  {p['student']}/{p['ps']}: {'late' if p['late'] else ''} {'' if p['matched_by'] == 'name' else p['matched_by']}".rstrip())
        for u in done.unmatched:
            print(f"UNMATCHED {u['source']}: {u['reason']}")
        print(f"{len(done.placed)} placed, {len(done.unmatched)} unmatched (listed in {course.reports / 'collect.json'})")
        return 0
    if action == "autograde":
        from vitkit.course.grade import autograde
        from vitkit.course.sandbox import Limits

        limits = Limits(timeout=args.timeout or config_timeout(course), memory_gb=args.memory, wall=args.wall)
        results = autograde(course, args.ps, jobs=args.jobs, limits=limits, scheduler=args.scheduler, students=args.student,
                            progress=True)
        for r in results:
            if r.status != "graded" or r.reason:
                print(f"{r.student}/{r.ps}: {r.status}, {r.score:g} points: {r.reason}")
        print(f"{len(results)} submissions graded: {sum(r.status == 'graded' for r in results)} ran, "
              f"{sum(r.status in ('failed', 'flagged') for r in results)} failed or flagged")
        return 0
    if action == "feedback":
        from vitkit.course.feedback import feedback

        pages = feedback(course, args.ps)
        print(f"{len(pages)} feedback pages in {course.feedback}")
        return 0
    if action == "export":
        from vitkit.course.feedback import export

        out = args.output or str(course.reports / ("grades.csv" if args.format == "csv" else "canvas.csv"))
        print(f"grades written to {export(course, out, args.format, args.ps)}")
        return 0
    if action == "report":
        from vitkit.course.report import report

        for ps in course.resolve(args.ps):
            print(f"{ps}: {report(course, ps)}")
        return 0
    if action == "status":
        return status(course)
    raise SystemExit(f"unknown action {action!r}")


def status(course: Course) -> int:
    """Print, per problem set: collected, graded, failed/flagged (with reasons), feedback written."""
    from vitkit.course.grade import load_records

    for ps in course.problem_sets():
        students = course.students(ps)
        records = load_records(course, ps)
        bad = {s: r for s, r in records.items() if r["status"] != "graded"}
        fb = sum(1 for s in students if (course.feedback / s / ps).is_dir())
        print(f"{ps}: {len(students)} collected, {len(records)} graded ({len(bad)} failed/flagged/missing), {fb} with feedback, "
              f"{len([s for s in students if s not in records])} not yet graded")
        for s, r in sorted(bad.items()):
            print(f"  {s}: {r['status']}: {r['reason']}")
    return 0
