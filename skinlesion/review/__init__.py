"""What a reviewer of a diagnostic-accuracy study expects beside the headline numbers (TRIPOD+AI, CLEAR Derm).

The cohort (class counts per split, the flow of files to what was scored, Table 1), the algorithm's
version and hyperparameters, per-class intervals, the decision curve of the malignant call, the primary
endpoint's planned precision, and the published baselines of the benchmark data sets.
"""
