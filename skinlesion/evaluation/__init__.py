"""Scoring, comparing, explaining and exporting trained models: evaluate, aggregate and export."""
