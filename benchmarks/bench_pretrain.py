"""Training throughput of our BERT against transformers' BertForMaskedLM (sdpa) of the same shape, in one run.

Three contenders train on the same batch (``--batch-size`` x ``--seq-len``, ~``--mask-prob`` of the tokens
labelled) with the same precision and the same optimizer (torch AdamW), one full step each time:
forward + backward + AdamW step + zero_grad.

  ours        pretraining.modeling.BertForPreTraining (fused QKV, SDPA, MLM head on the labelled rows only)
  hf-full     BertForMaskedLM(labels=...) as transformers ships it: the MLM head over every token
  hf-gather   BertForMaskedLM with its head applied only at the labelled rows (model.bert, then model.cls on the
              gathered rows): the 24h-BERT trick, so the comparison isolates the rest of the implementation

The contenders are interleaved finely (``--repeats`` rounds; in each round every contender times ``--steps``
steps, in a rotating order), after ``--warmup`` untimed steps each. A shared CPU's load comes in bursts that can
slow one step several-fold, so the table reports each contender's median and, as the headline, the median over
rounds of the per-round ratio (the two contenders of a ratio ran seconds apart, under about the same load).
On a GPU it also prints MFU: model FLOPs from ``pretraining_flops_per_sample`` (which counts the sparse head)
times samples/s, divided by the device's dense bf16 peak. Example:

    python benchmarks/bench_pretrain.py --presets bert-mini bert-small --precision bf16
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# OpenMP threads that spin while waiting turn a shared CPU's load into 3-6x slower steps whose time follows the
# op count, not the work (measured here); passive waiting keeps every contender honest. Set the variable
# yourself to override (it must be set before torch loads OpenMP).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pretraining.metrics_log import gpu_peak_flops  # noqa: E402
from pretraining.modeling import (IGNORE_INDEX, BertForPreTraining, build_model_config,  # noqa: E402
                                  pretraining_flops_per_sample)


def make_batch(batch_size, seq_len, vocab_size, mask_prob, device, seed=0):
    """Random token ids (full-length sequences, as the packed pretraining samples are), ~mask_prob labelled."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=gen)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    chosen = torch.rand(batch_size, seq_len, generator=gen) < mask_prob
    chosen[:, 0] = False  # never [CLS]
    labels[chosen] = input_ids[chosen]
    input_ids[chosen] = 4  # the [MASK] id of a bert-base-uncased-like vocabulary
    attention_mask = torch.ones_like(input_ids)
    return input_ids.to(device), attention_mask.to(device), labels.to(device)


def build_contenders(preset, ln_mode, vocab_size, seq_len, device, dtype):
    """The three (name, model, loss_fn) contenders, each with fresh weights of the same shape."""
    from transformers import BertConfig, BertForMaskedLM

    config = build_model_config(preset, vocab_size, encoder_ln_mode=ln_mode, max_position_embeddings=max(512, seq_len))
    ours = BertForPreTraining(config).to(device=device, dtype=dtype)

    def hf_model():
        hf_config = BertConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                               num_hidden_layers=config.num_hidden_layers,
                               num_attention_heads=config.num_attention_heads,
                               intermediate_size=config.intermediate_size, hidden_act=config.hidden_act,
                               max_position_embeddings=config.max_position_embeddings,
                               attn_implementation="sdpa")
        return BertForMaskedLM(hf_config).to(device=device, dtype=dtype)

    def hf_full_loss(model, input_ids, attention_mask, labels):
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    def hf_gather_loss(model, input_ids, attention_mask, labels):
        hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        flat_labels = labels.reshape(-1)
        rows = torch.nonzero(flat_labels != IGNORE_INDEX).squeeze(1)
        logits = model.cls(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))
        return F.cross_entropy(logits.float(), flat_labels.index_select(0, rows))

    def ours_loss(model, input_ids, attention_mask, labels):
        return model(input_ids, attention_mask, labels)

    return config, [("ours", ours, ours_loss), ("hf-full", hf_model(), hf_full_loss),
                    ("hf-gather", hf_model(), hf_gather_loss)]


def make_step(model, loss_fn, batch, autocast_dtype, device):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()

    def step():
        with torch.autocast(device_type=device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(model, *batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, n, device):
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    synchronize(device)
    return time.perf_counter() - start


def bench_preset(preset, args, device):
    torch.manual_seed(0)
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    config, contenders = build_contenders(preset, args.ln_mode, args.vocab_size, args.seq_len, device, torch.float32)
    if args.compile:
        contenders[0] = (contenders[0][0], torch.compile(contenders[0][1], dynamic=True), contenders[0][2])
    batch = make_batch(args.batch_size, args.seq_len, args.vocab_size, args.mask_prob, device)
    num_predictions = int((batch[2] != IGNORE_INDEX).sum()) / args.batch_size
    steps = {name: make_step(model, loss_fn, batch, autocast_dtype, device) for name, model, loss_fn in contenders}
    for name, step in steps.items():
        time_steps(step, args.warmup, device)
    names = list(steps)
    rates = {name: [] for name in names}
    peak_mib = {name: 0.0 for name in names}  # GPU: the most allocated while it stepped (all contenders resident)
    for round_index in range(args.repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rates[name].append(args.steps * args.batch_size / time_steps(steps[name], args.steps, device))
            if device.type == "cuda":
                peak_mib[name] = max(peak_mib[name], torch.cuda.max_memory_allocated(device) / 2 ** 20)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {other: statistics.median(a / b for a, b in zip(rates["ours"], rates[other]))
              for other in ("hf-full", "hf-gather")}
    flops = pretraining_flops_per_sample(config, args.seq_len, num_predictions)
    peak = gpu_peak_flops(torch.cuda.get_device_name(device), args.precision) if device.type == "cuda" else None
    print(f"\n{preset} ({args.ln_mode}), batch {args.batch_size} x {args.seq_len}, {num_predictions:.1f} labelled "
          f"tokens/sample, {args.precision}, {device.type}, {torch.get_num_threads()} threads, "
          f"{args.repeats} rounds x {args.steps} steps, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in steps:
        spread = f"[{min(rates[name]):.1f}-{max(rates[name]):.1f}]"
        mfu = f"  MFU {100 * medians[name] * flops / peak:.1f}%" if peak else ""
        print(f"  {name:10s} {medians[name]:9.1f} samples/s  {spread:>17s}{mfu}")
    for other, target in (("hf-full", 3.0), ("hf-gather", 1.2)):
        print(f"  ours / {other:9s} = {ratios[other]:.2f}x median per-round ratio, "
              f"{medians['ours'] / medians[other]:.2f}x ratio of medians   (target >= {target:g}x)")
    return [{"preset": preset, "contender": name, "batch": args.batch_size, "seq_len": args.seq_len,
             "samples_per_s": round(medians[name], 1),
             "mfu": round(medians[name] * flops / peak, 4) if peak else None,
             "peak_memory_mib": round(peak_mib[name]) if device.type == "cuda" else None,
             "vs_ours": round(1.0 if name == "ours" else 1 / ratios[name], 3)} for name in names]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["bert-mini", "bert-small"])
    parser.add_argument("--ln-mode", default="post-ln", choices=["pre-ln", "post-ln"],
                        help="our block type (post-ln = the same architecture as transformers' BERT)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"],
                        help="bf16 = fp32 weights under torch.autocast(bfloat16), for every contender")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--mask-prob", type=float, default=0.15)
    parser.add_argument("--vocab-size", type=int, default=30522, help="tokenizer vocabulary (bert-base-uncased's)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per contender per round")
    parser.add_argument("--repeats", type=int, default=15, help="rounds (the table reports medians)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contender before timing")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (not the baselines)")
    parser.add_argument("--json", default="", help="also write the table's rows to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"torch {torch.__version__}")
    rows = [row for preset in args.presets for row in bench_preset(preset, args, device)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
