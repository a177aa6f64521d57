"""The pipeline core: configuration, run-folder layout, manifests and the stage runner."""
