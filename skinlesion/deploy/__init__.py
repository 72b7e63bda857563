"""Deployment: the export stage's artefacts and the predict command."""
