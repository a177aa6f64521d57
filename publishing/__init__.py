"""The publish stage: the run's models to the Hugging Face Hub (``publishing.stage``)."""
