"""The ViT-vs-CNN tutorial's machinery: the comparison, its closing table, and the headless runner.

``lectures/04_vit_vs_cnn.ipynb`` calls these functions and stays readable; ``vitkit tutorial``
(``make tutorial``) executes that notebook headless and writes, under ``--out`` (default
``build/tutorial``): the executed notebook, an HTML report, the figures (PNG), ``results.json``
(every measured number) and ``table.md`` (the closing table, written from ``results.json``).

Everything the models get is the same: the data (``mnist5k``), the recipe (one :class:`Plan`:
optimiser, learning rate, schedule, augmentation, batch size) and the budget (the number of
training steps). How long that budget is comes from :mod:`vitkit.budget`: the full run, or a
quick one while testing (``VITKIT_QUICK=1``).

Beside the ViT and the CNN stand the debate's arms (:data:`ARMS`): a hybrid ViT with a
convolutional stem, DeiT's distilled ViT (taught by the CNN of the same run) and ConvMixer.
Data-efficiency points are trained with several seeds (:attr:`Plan.seeds`) and reported as mean
and spread. Headless runs report their progress (section, runs done, time left) through
:func:`progress`, which ``vitkit tutorial`` prints as the notebook runs.

Modules, one idea each: ``plan`` (the models compared, :class:`Plan`, progress), ``run`` (training and
measuring, the pre-trained ViT, data efficiency, robustness), ``results`` (:class:`Results`, the closing table,
findings, saving), ``plots`` (the figures) and ``headless`` (``vitkit tutorial``). Every name is importable
from ``vitkit.tutorial``.
"""

from vitkit.tutorial.headless import (  # noqa: F401
    _ProgressPrinter,
    add_arguments,
    execute_notebook,
    main,
    run_tutorial,
    section_titles,
)
from vitkit.tutorial.plan import (  # noqa: F401
    _PROGRESS,
    ARMS,
    COMPARED,
    MODELS,
    NOTEBOOK,
    OUT_ENV,
    PRETRAINED,
    PROGRESS_ENV,
    SCRATCH_TWIN,
    TEACHERS,
    Plan,
    _clock,
    _epochs_for,
    _steps_per_epoch,
    plan,
    report_progress,
    run_budget,
    start_progress,
)
from vitkit.tutorial.plots import (  # noqa: F401
    plot_curves,
    plot_data_efficiency,
    plot_probe_examples,
    plot_robustness,
    plot_where_models_look,
    where_models_look,
)
from vitkit.tutorial.results import (  # noqa: F401
    Results,
    _mean_spread,
    accuracy_stats,
    closing_table,
    findings,
    markdown,
    output_dir,
    robustness_summary,
    save_figure,
    save_results,
    timed,
)
from vitkit.tutorial.run import (  # noqa: F401
    Run,
    _no_validation,
    _synchronize,
    balanced_indices,
    data_efficiency,
    examples,
    find_pretrained,
    inference_throughput,
    load_data,
    measure,
    pretrained_arms,
    probe_subset,
    robustness,
    train_model,
    train_models,
)

__all__ = [
    "ARMS",
    "COMPARED",
    "MODELS",
    "PRETRAINED",
    "SCRATCH_TWIN",
    "TEACHERS",
    "Plan",
    "accuracy_stats",
    "report_progress",
    "robustness_summary",
    "run_budget",
    "start_progress",
    "Results",
    "Run",
    "balanced_indices",
    "closing_table",
    "data_efficiency",
    "examples",
    "find_pretrained",
    "findings",
    "inference_throughput",
    "load_data",
    "markdown",
    "measure",
    "output_dir",
    "plan",
    "plot_curves",
    "plot_data_efficiency",
    "plot_probe_examples",
    "plot_robustness",
    "plot_where_models_look",
    "execute_notebook",
    "pretrained_arms",
    "probe_subset",
    "robustness",
    "run_tutorial",
    "save_figure",
    "save_results",
    "timed",
    "train_model",
    "train_models",
    "where_models_look",
]
