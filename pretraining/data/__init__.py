"""Reading the dataset stage's HDF5 samples for pretraining: ``shards`` finds and checks the files, ``loader``
streams each rank's micro-batches."""
