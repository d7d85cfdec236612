"""The course's HTML pages (class report, feedback summary) from Jinja templates in ``vitkit/course/templates/``.

Autoescaping is on: every value a template shows (student names, error messages, a grader's comment) is
escaped, so text a student wrote can never become markup in the instructor's or another student's browser.
"""

from __future__ import annotations

import functools


@functools.cache
def environment():
    """The Jinja environment: templates from the package, autoescape on (as ``html.escape``), the ``g`` filter (``format(x, "g")``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("vitkit.course", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_escape,
    )
    env.filters["g"] = lambda x: format(x, "g")
    return env


def _escape(value):
    """Escape as ``html.escape`` does (``&#x27;``, ``&quot;``), as the pages always have: the same bytes as before the
    templates, so a check that looks for ``html.escape(text)`` in a page finds it; markup made on purpose stays."""
    import html

    from markupsafe import Markup

    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


def render(name: str, **values) -> str:
    """The template ``name`` (e.g. ``report.html.j2``) rendered with ``values``, as an HTML string."""
    return environment().get_template(name).render(**values)
