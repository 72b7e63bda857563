"""Serve a model folder over HTTP: the API a clinic's software calls, and a page for people (``skinlesion-serve``)."""
