"""Lesion-grouped k-fold cross-validation: the folds, the fold runs' pooled predictions, the estimate and comparisons."""  # noqa: E501
