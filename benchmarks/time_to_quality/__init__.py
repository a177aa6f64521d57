"""The pieces of ``benchmarks/bench_time_to_quality.py``: one harness (a pausable training clock and the snapshot
points of the budget), the contenders' training processes, and one evaluation path for every contender's exported
Hugging Face model (held-out MLM loss on fixed masks, GLUE dev scores through ``finetuning/run_glue.py``)."""
