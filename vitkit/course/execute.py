"""nbgrader's execution settings for one grading task: a real preprocessor class and the config that uses it.

:class:`CappedExecute` is nbgrader's ``Execute`` with an output cap per cell and a log line when the
first cell starts (so the coordinator can tell "the kernel never ran the student's code": a failure
of the grader, not of the student). :func:`config_text` is the ``nbgrader_config.py`` of the task's
private course copy: the kernel spec that confines the kernel, its ipc sockets, the timeouts.
"""

from __future__ import annotations

from nbformat.v4 import output_from_msg
from nbgrader.preprocessors import Execute
from traitlets import Integer

FIRST_CELL = "vitkit: the kernel is running the notebook"


class CappedExecute(Execute):
    """nbgrader's Execute keeping at most ``max_output`` bytes of outputs per cell (errors always kept)."""

    max_output = Integer(4 * 2**20, help="bytes of output kept per cell; the rest is dropped with a note").tag(
        config=True
    )

    def preprocess(self, nb, resources=None, km=None):
        self._used: dict[int, int] = {}
        self._announced = False
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index, **kwargs):
        if not self._announced and cell.cell_type == "code":
            self._announced = True
            self.log.info(FIRST_CELL)
        return super().preprocess_cell(cell, resources, index, **kwargs)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        used = self._used.get(cell_index, 0)
        size = len(str(msg.get("content", "")))
        if used + size > self.max_output:
            if used <= self.max_output:
                note = f"\n[vitkit: output beyond {self.max_output >> 20} MB dropped]\n"
                outs.append(
                    output_from_msg(
                        {
                            "msg_type": "stream",
                            "header": {"msg_type": "stream"},
                            "content": {"name": "stderr", "text": note},
                        }
                    )
                )
            self._used[cell_index] = self.max_output + 1
            return None
        self._used[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)


def config_text(root: str, timeout: int, max_output: int, ipc: str) -> str:
    """The ``nbgrader_config.py`` of one task's course copy at ``root`` (nothing of the course's own config)."""
    return f"""\
# Written by vitkit.course.sandbox for one grading task; nothing here is the course's own config.
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades

from vitkit.course.execute import CappedExecute

c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "vitkit"
c.CourseDirectory.source_directory = "source"
c.CappedExecute.timeout = {timeout}
c.CappedExecute.max_output = {max_output}
# Every notebook runs in the confined kernel, whatever kernel its metadata names.
c.CappedExecute.kernel_name = "vitkit-sandbox"
# A flood of output can still be in flight when the cell finishes: drop what is late instead of failing the notebook.
c.CappedExecute.iopub_timeout = 10
c.CappedExecute.raise_on_iopub_timeout = False
# Sockets in the kernel's own folder: the kernel needs no network.
c.KernelManager.transport = "ipc"
c.KernelManager.ip = {ipc!r}
c.LimitOutput.max_lines = 2000
c.Application.log_format = "%(asctime)s.%(msecs)03d [%(name)s | %(levelname)s] %(message)s"
c.Application.log_datefmt = "%H:%M:%S"
c.Autograde.autograde_preprocessors = [CappedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
"""
