"""The foundation every stage builds on: the settings table, configuration, run-folder layout, manifests, errors."""
