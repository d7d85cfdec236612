# The instructor: formgrader works on the course in their home (clone the kit there: ~/vitkit).
c = get_config()  # noqa: F821
c.CourseDirectory.root = "/home/jovyan/vitkit"
