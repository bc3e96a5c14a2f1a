"""Experiment configs: one file per experiment, shared builders in common/."""
