"""nbgrader's course directory mapped onto the kit's layout.

solutions/<ps>/<ps>.ipynb is the nbgrader *source*, exercises/<ps>/<ps>.ipynb the *release* that
`nbgrader generate_assignment` (or `vitkit course release`) writes. submitted/, autograded/,
feedback/ and gradebook.db are working folders, git-ignored. Students come from roster.csv
(columns id, first_name, last_name, email) when that file exists.
"""

import csv
import os

c = get_config()  # noqa: F821 (nbgrader provides get_config)

here = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = here
c.CourseDirectory.course_id = "vitkit"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# nbgrader interrupts any cell after 30 s by default, silently in Validate. The kit's slowest cell
# (a short training run) needs far less than this on a 2-core CPU; the limit only catches hangs.
c.Execute.timeout = 300

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

roster = os.path.join(here, "roster.csv")
if os.path.exists(roster):
    with open(roster, newline="") as f:
        c.CourseDirectory.db_students = [
            {k: row.get(k, "") for k in ("id", "first_name", "last_name", "email")} for row in csv.DictReader(f)
        ]
