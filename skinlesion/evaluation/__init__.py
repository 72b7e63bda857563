"""The evaluation stages' logic: score a run, score an external set, read the runs back, aggregate them."""
