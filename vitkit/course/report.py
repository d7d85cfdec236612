"""The class-wide report: which mistake, how many students, per question (``vitkit course report``).

Reads the records the coordinator stored for each graded submission (the same whether one process
or a Dask cluster graded them) and writes ``reports/<ps>/index.html`` and ``reports/<ps>/mistakes.csv``:
per question, the share of graded students with each named mistake (catalogue codes; anything
else as ``other: <first line of the error>``), most common first, with one anonymised example
message; score histograms (matplotlib, embedded as PNG so the page opens offline); and the
students who did not submit or whose notebook could not run, with the reason.
"""

from __future__ import annotations

import base64
import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

from vitkit.course.feedback import catalogue
from vitkit.course.pages import render
from vitkit.course.paths import Course
from vitkit.course.records import load_records


def mistake_table(records: dict[str, dict], cat) -> list[dict]:
    """One row per (question, mistake): students, share of graded students, an anonymised example; sorted."""
    graded = {s: r for s, r in records.items() if r["status"] == "graded"}
    counts: dict[tuple[str, str], set[str]] = defaultdict(set)
    examples: dict[tuple[str, str], str] = {}
    for student, rec in sorted(graded.items()):
        for cells in rec.get("mistakes", {}).values():
            for gid, found in cells.items():
                for code, message in found:
                    label = code if code != "other" else f"other: {message}"
                    key = (gid, label)
                    counts[key].add(student)
                    examples.setdefault(key, _anonymise(message, records))
    rows = []
    for (gid, label), students in counts.items():
        info = cat.get(label)  # None for "other: ..." labels
        rows.append(
            {
                "question": gid,
                "mistake": label,
                "message": info.message if info else label,
                "students": len(students),
                "share": round(len(students) / max(1, len(graded)), 4),
                "example": examples[(gid, label)],
            }
        )
    return sorted(rows, key=lambda r: (r["question"], -r["students"], r["mistake"]))


def _anonymise(message: str, records: dict[str, dict]) -> str:
    for student in records:
        if len(student) > 2:
            message = message.replace(student, "<student>")
    return message[:300]


def problems(course: Course, ps: str, records: dict[str, dict]) -> list[dict]:
    """Students who did not submit, whose notebook could not run, who were not graded (the grader's failure), or were flagged."""
    from nbgrader.api import Gradebook

    label = {"error": "not graded", "failed": "failed (0 points)"}
    out = [
        {"student": s, "status": label.get(r["status"], r["status"]), "reason": r.get("reason", "")}
        for s, r in sorted(records.items())
        if r["status"] != "graded"
    ]
    out += [
        {"student": s, "status": f"flagged, {r.get('decision') or 'undecided'}", "reason": "; ".join(r["flags"][:5])}
        for s, r in sorted(records.items())
        if r["status"] == "graded" and r.get("flags")
    ]
    if course.gradebook.is_file():
        with Gradebook(course.db_url, "vitkit") as gb:
            known = sorted(s.id for s in gb.students)
        out += [{"student": s, "status": "missing", "reason": "did not submit"} for s in known if s not in records]
    return sorted(out, key=lambda r: (r["status"], r["student"]))


def written_table(manual: dict[str, dict[str, dict]]) -> list[dict]:
    """Per written answer: how many a person graded, how many wait, the mean of the graded ones (of ``max``)."""
    rows = []
    for gid in sorted({g for cells in manual.values() for g in cells}):
        found = [cells[gid] for cells in manual.values() if gid in cells]
        done = [m["score"] for m in found if not m["pending"]]
        rows.append(
            {
                "question": gid,
                "graded": len(done),
                "pending": len(found) - len(done),
                "mean": round(sum(done) / len(done), 2) if done else None,
                "max": found[0]["max"],
            }
        )
    return rows


def histograms_png(records: dict[str, dict]) -> bytes:
    """Score histograms: one panel per question and one for the total, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_q: dict[str, list[float]] = defaultdict(list)
    tops: dict[str, float] = {}
    totals = []
    for rec in records.values():
        total = 0.0
        for cells in rec.get("scores", {}).values():
            for gid, (score, top) in cells.items():
                per_q[gid].append(score)
                tops[gid] = top
                total += score
        totals.append(total)
    panels = sorted(per_q) + ["total"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
    for ax, name in zip(axes[0], panels):
        values = per_q[name] if name != "total" else totals
        top = tops.get(name, sum(tops.values()))
        ax.hist(
            values,
            bins=max(1, min(20, int(top) + 1 if top else 10)),
            range=(0, max(top, 1e-9)),
            color="#4477aa",
            edgecolor="white",
        )
        ax.set_title(f"{name} (of {top:g})", fontsize=9)
        ax.set_xlabel("score")
        ax.set_ylabel("students")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def report(course: Course, ps: str) -> Path:
    """Write ``reports/<ps>/index.html`` and ``mistakes.csv`` (and ``scores.png``); returns the HTML path."""
    from vitkit.course.records import manual_grades

    records = load_records(course, ps)
    if not records:
        raise SystemExit(f"no graded submissions of {ps}: run `vitkit course autograde {ps}` first")
    cat = catalogue()
    written = written_table(manual_grades(course, ps))
    rows = mistake_table(records, cat)
    trouble = problems(course, ps, records)
    out = course.reports / ps
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "mistakes.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["question", "mistake", "message", "students", "share", "example"], lineterminator="\n"
        )
        w.writeheader()
        w.writerows(rows)
    png = histograms_png(records)
    (out / "scores.png").write_bytes(png)
    graded = sum(r["status"] == "graded" for r in records.values())
    scores = Counter(
        round(sum(s for c in r.get("scores", {}).values() for s, _ in c.values()), 2) for r in records.values()
    )
    page = render(
        "report.html.j2",
        ps=ps,
        submissions=len(records),
        graded=graded,
        mean=sum(k * v for k, v in scores.items()) / max(1, sum(scores.values())),
        mistakes=rows,
        png_base64=base64.b64encode(png).decode(),
        written=written,
        trouble=trouble,
    )
    (out / "index.html").write_text(page)
    return out / "index.html"
