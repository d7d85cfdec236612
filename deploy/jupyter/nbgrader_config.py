# Every user of the class image (deploy/Dockerfile copies this to /etc/jupyter/nbgrader_config.py).
c = get_config()  # noqa: F821
c.Exchange.root = "/srv/nbgrader/exchange"  # a ReadWriteMany volume all users mount (z2jh-values.yaml)
c.CourseDirectory.course_id = "vitkit"
