"""The report's figure of the spread of each task's score over seeds (the pretraining curves are drawn by
``pretraining.metrics_log.plot_training_curves``, the one plot of ``metrics.jsonl``).
"""
from pipeline.figures import pyplot, save_figure


def plot_seed_spread(bests: dict, path, names=None):
    """For each task, the primary metric (%) of every seed of its best configuration; None without tasks.

    ``names`` optionally maps a task to the label shown under it (the demo tasks' own names).
    """
    if not bests:
        return None
    plt = pyplot()
    tasks = list(bests)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(tasks) + 2), 4.5))
    series = [[100 * v for v in bests[t].config.values(bests[t].metric)] for t in tasks]
    ax.boxplot(series, showfliers=False)
    for position, values in enumerate(series, start=1):
        ax.scatter([position] * len(values), values, s=18, zorder=3)
    labels = [f"{(names or {}).get(t, t)}\n({bests[t].metric})" for t in tasks]
    ax.set_xticks(range(1, len(tasks) + 1), labels, fontsize=8)
    ax.set_ylabel("dev score (%)")
    ax.set_title("Best configuration of each task: spread over seeds")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path, dpi=120)
