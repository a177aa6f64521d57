"""The benchmark's table, its figure, and the time each contender needs to reach a target held-out loss."""
from pathlib import Path
from statistics import mean


def time_to_reach(curve: list, target: float):
    """(seconds, exact) at which the (train_s, loss) ``curve`` first reaches ``target``: linear between the two
    snapshots around the crossing; (first snapshot's seconds, False) when the first one is already below (an upper
    bound); None when never reached."""
    previous = None
    for seconds, loss in curve:
        if loss <= target:
            if previous is None:
                return seconds, False
            s0, l0 = previous
            return s0 + (l0 - target) / (l0 - loss) * (seconds - s0), True
        previous = (seconds, loss)
    return None


def mean_metric(jobs: list, name: str):
    values = [job[name] for job in jobs if name in job]
    return mean(values) if values else None


def results_table(rows: list, target: float, reference_s: float, tasks: list) -> str:
    """``rows``: dicts with name, description, steps, samples, real_tokens (None when not recorded), padding (the
    share of [PAD] positions in its rows), curve [(s, loss)], glue {task: [metrics per seed]}. The last loss
    column is the final held-out loss."""
    points = max(len(r["curve"]) for r in rows)
    head = (["contender", "steps", "samples/s", "real tokens/s", "padding"]
            + [f"loss @{k}/{points}" for k in range(1, points + 1)]
            + ["time to target", "x budget"] + [f"{t} {m}" for t, m in tasks])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        losses = [f"{loss:.3f}" for _, loss in r["curve"]] + [""] * (points - len(r["curve"]))
        reached = time_to_reach(r["curve"], target)
        if reached is None:
            when, share = "not reached", "-"
        else:
            seconds, exact = reached
            when = f"{seconds:.0f} s" if exact else f"<= {seconds:.0f} s"
            share = f"{seconds / reference_s:.2f}" if exact else f"<= {seconds / reference_s:.2f}"
        final_s = r["curve"][-1][0]
        scores = []
        for task, metric in tasks:
            value = mean_metric(r["glue"].get(task, []), metric)
            scores.append("-" if value is None else f"{100 * value:.1f}")
        real = "-" if r["real_tokens"] is None else f"{r['real_tokens'] / final_s:,.0f}"
        lines.append("| " + " | ".join([r["name"], str(r["steps"]), f"{r['samples'] / final_s:.0f}", real,
                                         f"{r['padding']:.1%}", *losses, when, share, *scores]) + " |")
    return "\n".join(lines)


def plot_curves(rows: list, target: float, plateau: float, path: Path) -> Path:
    from pipeline.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        seconds, losses = zip(*r["curve"])
        ax.plot(seconds, losses, marker="o", label=r["name"])
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target: HF run_mlm's final loss")
    ax.axhline(plateau, color="black", linestyle=":", linewidth=1, label="word frequencies alone")
    ax.set_xlabel("training wall-clock seconds")
    ax.set_ylabel("held-out MLM loss (same samples, same masks)")
    ax.set_title("Held-out MLM loss against training time")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the axes
    return save_figure(fig, path)
