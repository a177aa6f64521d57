"""One contender's training, in its own process: ``python benchmarks/time_to_quality/train_contender.py SPEC``
(``SPEC``: the JSON file ``bench_time_to_quality.py`` writes). Each contender runs alone in a fresh process, so that
none inherits another's threads, allocator state or compiled kernels."""
import json
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))


def main(spec_path: str) -> int:
    from pipeline import layout
    from pipeline.defaults import MODEL_PRESETS
    from orchestration.stages import load_config
    from pipeline.manifest import write_json_atomic
    from pipeline.tokenizer_loading import load_tokenizer
    from pretraining.engine import machine_precision

    from transformers.utils import logging

    logging.disable_progress_bar()  # "Writing model shards" at every snapshot
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    output_dir = Path(spec["output_dir"])
    shutil.rmtree(output_dir, ignore_errors=True)  # an interrupted contender starts over
    output_dir.mkdir(parents=True)
    write_json_atomic(output_dir / "spec.json", spec)  # what it was trained with
    cfg = load_config(spec["config"], spec["opts"])
    if spec["kind"] == "ours":
        from benchmarks.time_to_quality.ours import train_ours
        from pretraining.arguments import PretrainPaths

        paths = PretrainPaths(layout.samples_dir(cfg), output_dir, str(layout.dataset_tokenizer_dir(cfg)))
        train_ours(cfg, paths, spec["budget_s"], spec["points"])
    else:
        from benchmarks.time_to_quality.hf_recipes import grouped_blocks, train_hf
        from dataset.text_shards import list_text_shards

        tokenizer = load_tokenizer(str(layout.dataset_tokenizer_dir(cfg)))
        blocks = grouped_blocks(list_text_shards(layout.text_shards_dir(cfg), "train"), tokenizer,
                                cfg.DATASET.MAX_SEQ_LENGTH, Path(spec["cache_dir"]))
        train_hf(spec["hf"], MODEL_PRESETS[cfg.MODEL.PRESET], tokenizer, blocks, output_dir, spec["budget_s"],
                 spec["points"], cfg.PRETRAIN.BATCH_SIZE, machine_precision(cfg.PRETRAIN.PRECISION),
                 cfg.SYSTEM.SEED)
    import torch.distributed as dist

    if dist.is_initialized():  # ours: the gloo group's threads must not outlive the interpreter
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
