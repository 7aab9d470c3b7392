"""Hyperparameter sweeps: Ray Tune with Optuna over walk-forward folds, tracked in MLflow.

Modules:
- ``tune.config``: the ``tune`` Hydra group read into dataclasses;
- ``tune.space``: the YAML search space as Optuna distributions, samplers, trial overrides;
- ``tune.folds``: walk-forward folds over the training span and the per-fold data;
- ``tune.trainable``: the Tune function trainable (train per fold, score out of sample, report);
- ``tune.report``: the sweep report with the deflated Sharpe ratio and PBO;
- ``tune.sweep``: ``python -m tune.sweep`` (Hydra app) and :func:`tune.sweep.run_sweep`;
- ``tune.export``: the top trials retrained and written as an ensemble spec for serving;
- ``tune.cli``: ``mft tune run | report | export``.

See docs/tuning.md.
"""
