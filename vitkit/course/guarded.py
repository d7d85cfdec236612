"""What the static scan guards: the modules, functions, hooks, names and paths grading relies on.

Data only; :mod:`vitkit.course.scan` reads a student's cells against these tables.
"""

# Modules whose attributes a student's cells may not assign (matched on the dotted form in the source).
_GUARDED_MODULES = (
    "torch.testing",
    "numpy.testing",
    "np.testing",
    "vitkit",
    "grading",
    "builtins",
    "__builtins__",
    "sys.modules",
)
# Roots of module names: setattr/delattr/vars() on these (or on attributes of them) is an attack, on anything else it is Python.
_MODULE_ROOTS = {
    "torch",
    "numpy",
    "np",
    "vitkit",
    "builtins",
    "__builtins__",
    "sys",
    "IPython",
    "ipykernel",
    "grading",
    "ps1",
    "ps2",
    "ps3",
    "ps4",
    "ps5",
    "nbgrader",
    "unittest",
    "pytest",
}
# The comparison functions the checks and test cells rely on.
_TESTING = {
    "assert_close",
    "assert_allclose",
    "assert_array_equal",
    "assert_equal",
    "assert_almost_equal",
    "assert_array_almost_equal",
    "allclose",
    "isclose",
    "equal",
    "array_equal",
    "verify_integrity",
    "Mistake",
    "isinstance",
    "AssertionError",
}
# IPython's and Python's hooks into how an exception is shown (and so into what nbgrader reads as an error).
_HOOKS = {
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
    "set_custom_exc",
    "CustomTB",
    "InteractiveTB",
    "SyntaxTB",
    "excepthook",
    "_render_traceback_",
    "register_post_run_cell",
    "register_post_execute",
}
# Names the test cells use: rebinding them in the notebook changes what a test cell runs.
_TEST_CELL_NAMES = {"torch", "np", "numpy", "vitkit", "math", "F", "nn", "ps1", "ps2", "ps3", "ps4", "ps5", "builtins"}
# Words in a path that name grading's own files.
_GRADING_PATHS = (
    "gradebook",
    "nbgrader",
    "autograded",
    "submitted/",
    "feedback/",
    "vitkit/grading",
    "site-packages",
    ".nbgrader",
)
_WRITES = {
    "open",
    "write_text",
    "write_bytes",
    "remove",
    "unlink",
    "rename",
    "replace",
    "rmtree",
    "move",
    "copy",
    "copyfile",
    "copy2",
    "system",
    "run",
    "Popen",
    "call",
    "check_call",
    "check_output",
    "symlink_to",
    "touch",
    "truncate",
}
