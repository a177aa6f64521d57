"""Reading the dataset stage's HDF5 samples for pretraining.

- ``shards``: find the train/test files, read their attributes (with fallbacks for legacy files), check them
  against the tokenizer before any training starts.
- ``loader``: the deterministic, resumable stream of micro-batches each rank reads, with its MLM labels (read from
  static files, drawn at load time for dynamic ones).
"""
