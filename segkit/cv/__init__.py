"""Cross-validation: folds grouped by patient or core, their runs, and the ensemble of their models."""
