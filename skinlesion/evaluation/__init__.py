"""Scoring, comparing and explaining trained models: the evaluate and aggregate stages."""
