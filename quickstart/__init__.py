"""Offline data for the quickstart: a corpus made of installed Python docstrings and demo tasks in GLUE layout."""
