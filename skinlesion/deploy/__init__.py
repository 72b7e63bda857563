"""Deployment: what a model folder says about itself, the export stage's artefacts and the predict command."""
