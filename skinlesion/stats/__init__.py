"""Statistics of scored predictions: metrics, intervals, tests, calibration, thresholds. No files, no TensorFlow."""
