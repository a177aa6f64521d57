"""Pretraining stage: the BERT model, learning-rate schedules, the training loop and the export of the trained
model as a stock Hugging Face folder (``pretraining.hf_model``)."""
