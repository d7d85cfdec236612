"""``vitkit course``: the instructor's CLI over nbgrader, from an LMS zip to grades, feedback and a report.

    vitkit course release [PS] [--check]          exercises/ from solutions/ (--check: fail if they differ)
    vitkit course release PS --exchange [ROOT]    ... and into nbgrader's exchange, for students on a hub
    vitkit course collect --from DIR|ZIP          submissions into submitted/<student>/<ps>/
    vitkit course collect [PS] --exchange [ROOT]  ... from the exchange (late against the due date, missing listed)
    vitkit course autograde [PS] [--jobs N] ...   grade every submission, each in its own sandbox, on Dask
    vitkit course feedback [PS] [--release]       feedback/<student>/<ps>/*.html (no hidden tests); --release: to the exchange
    vitkit course export [--format csv|canvas]    grades.csv for the LMS
    vitkit course report [PS]                     reports/<ps>/index.html: mistakes per question, histograms
    vitkit course status                          collected, graded, not graded (and why), flagged, written answers to grade
    vitkit course doctor                          can grading work here, and how confined is the students' code
    vitkit course flags [PS]                      what the static scan flagged, with the lines
    vitkit course decide STUDENT PS accept|zero   the instructor's verdict on a flagged submission

Modules: ``paths`` (the layout), ``collect``, ``sandbox`` (grading one submission), ``confine`` (the
kernel's confinement), ``isolation`` (what the host allows, throwaway uids), ``baseline`` (the memory
baseline), ``execute`` (nbgrader's execution settings), ``scan`` (the static scan),
``mistakes`` (named mistakes in outputs), ``doctor``, ``grade`` (release, the coordinator, manual grades),
``feedback`` (feedback and export), ``report``, ``check`` (students), ``exchange`` (nbgrader's exchange on a hub),
``hub`` (a JupyterHub for a class).
"""

from __future__ import annotations

import argparse
import sys

from vitkit.course.paths import Course, find_course, read_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit course``."""
    parser.add_argument(
        "--root", help="the course folder (default: the folder with nbgrader_config.py at or above the working folder)"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    p.add_argument("ps", nargs="*", help="problem sets (default: all)")
    p.add_argument(
        "--check", action="store_true", help="change nothing; fail if exercises/ differs from what release makes"
    )
    p.add_argument(
        "--exchange",
        nargs="?",
        const="",
        default=None,
        metavar="ROOT",
        help="also release to nbgrader's exchange (default root: Exchange.root of nbgrader's config)",
    )
    p = sub.add_parser("collect", help="put submissions from a folder, an LMS zip or the exchange into submitted/")
    p.add_argument("ps", nargs="*", help="problem sets, with --exchange (default: all)")
    p.add_argument("--from", dest="source", metavar="DIR|ZIP")
    p.add_argument(
        "--exchange",
        nargs="?",
        const="",
        default=None,
        metavar="ROOT",
        help="collect from nbgrader's exchange (default root: Exchange.root of nbgrader's config)",
    )
    p.add_argument(
        "--due", help="due date for --exchange ('2026-12-05 17:00 UTC'; stored in the gradebook); later is late"
    )
    p = sub.add_parser("autograde", help="grade every submission in its own sandbox")
    p.add_argument("ps", nargs="*", help="problem sets (default: all)")
    p.add_argument(
        "--jobs", type=int, default=1, help="Dask worker processes on this machine (default 1: in this process)"
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp://host:8786) to send the tasks to"
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=None,
        help="seconds per cell (default: Execute.timeout of nbgrader_config.py, or 300)",
    )
    p.add_argument(
        "--memory",
        type=float,
        default=4.0,
        metavar="GB",
        help="memory per submission, on top of what the kernel's libraries map (default 4)",
    )
    p.add_argument(
        "--wall", type=int, default=None, help="seconds for one whole submission (default 3 × timeout + 120)"
    )
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument(
        "--force", action="store_true", help="grade again what is already graded (default: only what is not)"
    )
    p.add_argument(
        "--skip-doctor", action="store_true", help="do not check the host first (see `vitkit course doctor`)"
    )
    p = sub.add_parser("feedback", help="HTML feedback per student, hidden tests removed")
    p.add_argument("ps", nargs="*")
    p.add_argument("--release", action="store_true", help="return it to students through nbgrader's exchange")
    p.add_argument(
        "--exchange",
        default=None,
        metavar="ROOT",
        help="the exchange's root for --release (default: nbgrader's config)",
    )
    p = sub.add_parser("hub", help="a JupyterHub for a class on this machine (see vitkit/course/hub.py)")
    from vitkit.course.hub import add_arguments as hub_arguments

    hub_arguments(p)
    p = sub.add_parser("export", help="grades as CSV for an LMS")
    p.add_argument("--format", choices=["csv", "canvas"], default="csv")
    p.add_argument(
        "--output", "-o", default=None, help="file to write (default reports/grades.csv or reports/canvas.csv)"
    )
    p.add_argument("ps", nargs="*")
    p = sub.add_parser("report", help="per-question mistakes and score histograms")
    p.add_argument("ps", nargs="*")
    sub.add_parser("status", help="submissions collected, graded, not graded, flagged")
    sub.add_parser("doctor", help="check that grading can work here and how it is confined")
    p = sub.add_parser("flags", help="submissions the static scan flagged, with the lines that caused it")
    p.add_argument("ps", nargs="*")
    p = sub.add_parser("decide", help="accept or zero a flagged submission's grade")
    p.add_argument("student")
    p.add_argument("ps")
    p.add_argument("verdict", choices=["accept", "zero"])


def config_timeout(course: Course) -> int:
    """``Execute.timeout`` as the course's nbgrader_config.py sets it (300 when it sets none)."""
    value = read_config(course.root).get("Execute", {}).get("timeout")
    return 300 if value is None else int(value)


def main(args: argparse.Namespace) -> int:
    """Run one ``vitkit course`` action."""
    course = Course(args.root) if args.root else find_course()
    action = args.action
    if action == "release":
        from vitkit.course.assignment import release, release_differences

        bad = 0
        for ps in course.resolve(args.ps):
            if args.check:
                diff = release_differences(course, ps)
                if diff:
                    bad += 1
                    print(
                        f"{ps}: exercises/ differs from solutions/ in {', '.join(diff)}; run `vitkit course release {ps}` and commit"
                    )
                else:
                    print(f"{ps}: exercises/ is up to date")
            else:
                release(course, ps)
                print(f"{ps}: released to {course.release / ps}")
                if args.exchange is not None:
                    from vitkit.course import exchange

                    print(f"{ps}: students can fetch it from {exchange.release(course, ps, args.exchange or None)}")
        return 1 if bad else 0
    if action == "collect":
        from vitkit.course.collect import Collected, collect

        if (args.source is None) == (args.exchange is None):
            raise SystemExit("collect needs one of --from DIR|ZIP (an LMS export) or --exchange [ROOT] (a hub)")
        if args.source is None:
            from vitkit.course import exchange

            done = Collected()
            for ps in course.resolve(args.ps):
                one = exchange.collect(course, ps, args.exchange or None, args.due)
                done.placed += one.placed
                done.unmatched += one.unmatched
        else:
            done = collect(course, args.source)
        per_ps = {}
        for p in done.placed:
            per_ps[p["ps"]] = per_ps.get(p["ps"], 0) + 1
        for ps, n in sorted(per_ps.items()):
            print(f"{ps}: {n} submissions")
        for p in done.placed:
            if p["late"] or p["matched_by"] != "name":
                print(
                    f"  {p['student']}/{p['ps']}: {'late' if p['late'] else ''} {'' if p['matched_by'] == 'name' else p['matched_by']}".rstrip()
                )
        for u in done.unmatched:
            print(f"{'MISSING' if u.get('missing') else 'UNMATCHED'} {u['source']}: {u['reason']}")
        print(
            f"{len(done.placed)} placed, {len(done.unmatched)} unmatched (listed in {course.reports / 'collect.json'})"
        )
        return 0
    if action == "autograde":
        from vitkit.course.grade import BatchStopped, autograde
        from vitkit.course.sandbox import Limits

        limits = Limits(timeout=args.timeout or config_timeout(course), memory_gb=args.memory, wall=args.wall)
        try:
            results = autograde(
                course,
                args.ps,
                jobs=args.jobs,
                limits=limits,
                scheduler=args.scheduler,
                students=args.student,
                progress=True,
                force=args.force,
                doctor=not args.skip_doctor,
            )
        except BatchStopped as err:
            print(f"vitkit: batch stopped: {err}", file=sys.stderr)
            return 2
        for r in results:
            if r.status == "error":
                print(f"{r.student}/{r.ps}: NOT GRADED: {r.reason}")
            elif r.status != "graded" or r.reason or r.flags:
                flag = f" [flagged: {len(r.flags)} finding(s); `vitkit course flags`]" if r.flags else ""
                print(f"{r.student}/{r.ps}: {r.status}, {r.score:g} points{flag}: {r.reason}".rstrip(": "))
        errors = sum(r.status == "error" for r in results)
        print(
            f"{len(results)} submissions: {sum(r.status == 'graded' for r in results)} graded, "
            f"{sum(r.status == 'failed' for r in results)} failed (0 points), {errors} not graded"
            + (" (run autograde again once fixed)" if errors else "")
        )
        return 1 if errors else 0
    if action == "doctor":
        from vitkit.course.doctor import run

        return run(course)
    if action == "flags":
        from vitkit.course.records import load_records

        n = 0
        for ps in course.resolve(args.ps):
            for student, rec in load_records(course, ps).items():
                if rec.get("flags"):
                    n += 1
                    print(
                        f"{student}/{ps}: {rec.get('decision') or 'UNDECIDED'} ({rec['status']}, "
                        f"{sum(s for c in rec['scores'].values() for s, _ in c.values()):g} points)"
                    )
                    for f in rec["flags"]:
                        print(f"    {f}")
        print(
            f"{n} flagged submissions"
            + ("; decide each with `vitkit course decide STUDENT PS accept|zero`" if n else "")
        )
        return 0
    if action == "decide":
        from vitkit.course.records import decide

        decide(course, args.student, args.ps, args.verdict)
        print(f"{args.student}/{args.ps}: {args.verdict}")
        return 0
    if action == "feedback":
        from vitkit.course.feedback import feedback

        pages = feedback(course, args.ps)
        print(f"{len(pages)} feedback pages in {course.feedback}")
        if args.release:
            from vitkit.course import exchange

            for ps in course.resolve(args.ps):
                served = exchange.release_feedback(course, ps, args.exchange)
                print(
                    f"{ps}: feedback released to {len(served)} students through the exchange"
                    + (f" ({', '.join(served)})" if len(served) <= 10 else "")
                )
        return 0
    if action == "export":
        from vitkit.course.feedback import export

        out = args.output or str(course.reports / ("grades.csv" if args.format == "csv" else "canvas.csv"))
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = export(course, out, args.format, args.ps)
        for w in caught:
            print(f"WARNING: {w.message}", file=sys.stderr)
        print(f"grades written to {path}")
        return 0
    if action == "report":
        from vitkit.course.report import report

        for ps in course.resolve(args.ps):
            print(f"{ps}: {report(course, ps)}")
        return 0
    if action == "status":
        return status(course)
    if action == "hub":
        from vitkit.course.hub import main as hub_main

        return hub_main(course, args)
    raise SystemExit(f"unknown action {action!r}")


def status(course: Course) -> int:
    """Print, per problem set: collected, graded, failed/flagged (with reasons), feedback written."""
    from vitkit.course.records import load_records, manual_grades

    for ps in course.problem_sets():
        students = course.students(ps)
        records = load_records(course, ps)
        graded = {s: r for s, r in records.items() if r["status"] != "error"}
        bad = {s: r for s, r in graded.items() if r["status"] != "graded"}
        errors = {s: r for s, r in records.items() if r["status"] == "error"}
        flagged = {s: r for s, r in graded.items() if r.get("flags") and not r.get("decision")}
        fb = sum(1 for s in students if (course.feedback / s / ps).is_dir())
        waiting = [s for s in students if s not in records]
        print(
            f"{ps}: {len(students)} collected, {len(graded)} graded ({len(bad)} failed/missing, {len(flagged)} flagged "
            f"undecided), {len(errors)} not graded, {len(waiting)} not yet graded, {fb} with feedback"
        )
        for s, r in sorted(bad.items()):
            print(f"  {s}: {r['status']}: {r['reason']}")
        for s, r in sorted(errors.items()):
            print(f"  {s}: not graded: {r['reason']}")
        for s in sorted(flagged):
            print(f"  {s}: flagged ({len(flagged[s]['flags'])} finding(s)): `vitkit course flags {ps}`")
        written = manual_grades(course, ps)
        if written:
            pending = {s: sorted(g for g, m in cells.items() if m["pending"]) for s, cells in written.items()}
            pending = {s: gids for s, gids in pending.items() if gids}
            print(
                f"  written answers: {len(written) - len(pending)} of {len(written)} submissions fully graded by a person"
            )
            for s, gids in sorted(pending.items()):
                print(f"  {s}: needs manual grading ({', '.join(gids)}) in formgrader")
    return 0
