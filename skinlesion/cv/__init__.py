"""Lesion-grouped k-fold cross-validation: folds, fold runs' pooled predictions, the estimate, comparisons."""
