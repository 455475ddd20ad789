"""The reproduction of the paper, built on the core :mod:`vae_lib`: run settings and the profiles
that set budgets (:mod:`.config`), the paper's models and data for a setting (:mod:`.build`), the
paper-protocol trainer with checkpoints and exact resume (:mod:`.trainer`), one run trained and
evaluated into a run directory (:mod:`.experiment`, :mod:`.rundir`, :mod:`.records`), the plans of
runs and the main job that executes the notebooks per run with papermill, serially or on Dask
(:mod:`.plans`, :mod:`.runner`, :mod:`.distributed`, :mod:`.status`), and the results and the
report made from the records (:mod:`.results`, :mod:`.tables`, :mod:`.verdicts`,
:mod:`.convergence`). The command line is :mod:`.cli` (``vampprior``).

The core never imports this package.
"""
