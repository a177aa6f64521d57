"""The GLUE score as the BERT paper reports it: the plain average of nine dev numbers (WNLI left out).

Each number is the median over seeds of the task's best configuration. When tasks are missing the average is taken
over the ones present and the result says so, with both lists: a partial average is never passed off as the score.
"""
from dataclasses import dataclass

from finetuning.glue_tasks import GLUE_SCORE_METRICS


@dataclass
class GlueScore:
    columns: list  # [{"label", "task", "metric", "value" (fraction or None)}] in GLUE_SCORE_METRICS order

    @property
    def covered(self) -> list:
        return [c["label"] for c in self.columns if c["value"] is not None]

    @property
    def missing(self) -> list:
        return [c["label"] for c in self.columns if c["value"] is None]

    @property
    def missing_tasks(self) -> list:
        return list(dict.fromkeys(c["task"] for c in self.columns if c["value"] is None))

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def score(self):
        """The average (a fraction) over the covered columns; None when nothing is covered."""
        values = [c["value"] for c in self.columns if c["value"] is not None]
        return sum(values) / len(values) if values else None

    def describe(self, name: str = "GLUE score") -> str:
        """One line for the console and the report, naming what the average covers when it is partial."""
        if self.score is None:
            return f"{name} (dev): not available, no task of the score has results (missing: {', '.join(self.missing)})"
        text = f"{name} (dev): {100 * self.score:.2f}"
        if self.complete:
            return text + f" (average of all {len(self.columns)})"
        return (text + f" PARTIAL: average over {len(self.covered)} of {len(self.columns)} columns"
                f" (covered: {', '.join(self.covered)}; missing: {', '.join(self.missing)})")

    def as_dict(self) -> dict:
        return {"score": self.score, "complete": self.complete, "covered": self.covered, "missing": self.missing,
                "missing_tasks": self.missing_tasks, "columns": self.columns}


def glue_score(bests: dict) -> GlueScore:
    """The score over ``bests`` ({task: TaskBest}); a column is missing when its task has no best configuration."""
    columns = []
    for task, metric, label in GLUE_SCORE_METRICS:
        best = bests.get(task)
        value = best.config.median(metric) if best is not None else None
        columns.append({"label": label, "task": task, "metric": metric, "value": value})
    return GlueScore(columns)
