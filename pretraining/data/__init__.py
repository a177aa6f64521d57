"""Reading the dataset stage's HDF5 samples for pretraining.

- ``shards``: find the train/test files, read their attributes (with fallbacks for legacy files), check them
  against the tokenizer before any training starts.
- ``masking``: dense MLM labels from static files, BERT masks drawn at load time for dynamic files.
- ``loader``: the deterministic, resumable stream of micro-batches each rank reads.
"""
