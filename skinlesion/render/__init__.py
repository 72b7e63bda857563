"""What a person reads: the report, the model card and the summary from templates, the pictures, the plot data."""
