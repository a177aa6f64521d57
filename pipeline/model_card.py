"""Model cards: the ``README.md`` of an exported model folder, which the Hub shows and indexes (the README's "Model
cards and publishing"). The front matter is rendered by ``huggingface_hub.ModelCardData``, so that the Hub's parser
reads back what was written; a fact the caller did not record (None) leaves its line out rather than being guessed.
"""
import shlex
import sys
from pathlib import Path

from pipeline.manifest import write_text_atomic

CARD_NAME = "README.md"
CURVES_NAME = "training_curves.png"  # the pretraining curves, copied next to the weights so the Hub shows them
LIBRARY = "transformers"
TAGS = ["extremebert"]


def command_line(argv=None) -> str:
    """The command this process was started with, quoted so that it can be pasted into a shell."""
    argv = sys.argv if argv is None else argv
    return " ".join(shlex.quote(part) for part in [Path(sys.executable).name, *argv])


def _rows(pairs) -> str:
    """A two-column Markdown table of the (label, value) pairs whose value is known (not None, not "")."""
    rows = "".join(f"| {label} | {str(value).replace('|', '&#124;')} |\n" for label, value in pairs
                   if value is not None and value != "")
    return "| | |\n|---|---|\n" + rows if rows else ""


def _number(value):
    if value is None:
        return None
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _render(data, title: str, sections: list) -> str:
    from huggingface_hub import ModelCard

    body = f"# {title}\n\n" + "".join(f"## {name}\n\n{text.strip()}\n\n" for name, text in sections
                                      if text and text.strip())
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.rstrip()}\n"))


def _loading(task_class: str, pipeline_tag: str) -> str:
    return ("Stock `transformers` opens this folder; no code of ExtremeBERT is needed:\n\n```python\n"
            f"from transformers import AutoTokenizer, {task_class}, pipeline\n\n"
            "tokenizer = AutoTokenizer.from_pretrained(\"MODEL\")  # this folder, or its Hub repository\n"
            f"model = {task_class}.from_pretrained(\"MODEL\")\n"
            f"predict = pipeline(\"{pipeline_tag}\", model=\"MODEL\")\n```\n")


def _reproduce(command: str, config_text: str) -> str:
    text = f"This model was written by:\n\n```bash\n{command}\n```\n" if command else ""
    if config_text:
        text += ("\nwith this resolved config (`python main.py --config config.yaml` runs the whole pipeline from it;"
                 " paths are those of the machine it ran on):\n\n<details><summary>config.yaml</summary>\n\n"
                 f"```yaml\n{config_text.rstrip()}\n```\n\n</details>\n")
    return text


def pretrained_card(facts: dict) -> str:
    """The card of a pretraining ``final_model/``. ``facts`` holds what the run recorded (see
    ``pretraining.hf_model.card_facts``); every key is optional."""
    from huggingface_hub import ModelCardData

    f = facts.get
    data = ModelCardData(library_name=LIBRARY, pipeline_tag="fill-mask", license=f("license") or None,
                         tags=TAGS + ["bert", "masked-lm", "pretraining"], datasets=f("hub_datasets") or None)
    architecture = _rows([("model", f("model")), ("transformers model type", f("model_type")),
                          ("parameters", _number(f("parameters"))), ("LayerNorm", f("ln_mode")),
                          ("tokenizer", f("tokenizer")), ("vocabulary", _number(f("vocab_size"))),
                          ("sequence length", f("seq_length"))])
    sources = [f"- Hub dataset `{name}`" for name in f("hub_datasets") or []]
    sources += [f"- local text folder `{folder}`" for folder in f("local_corpora") or []]
    data_text = "\n".join(sources) + "\n\n" + _rows([
        ("dataset ID", f"`{f('dataset_id')}`" if f("dataset_id") else None),
        ("training samples", _number(f("train_samples"))), ("training tokens", _number(f("train_tokens"))),
        ("masking", f("masking"))])
    training = _rows([
        ("steps", _number(f("steps"))), ("tokens seen", _number(f("tokens_seen"))),
        ("wall time", f"{f('hours'):.3f} h" if f("hours") is not None else None), ("hardware", f("hardware")),
        ("precision", f("precision")), ("batch size", _number(f("batch_size"))), ("schedule", f("schedule")),
        ("stopped because", f("stop_reason")), ("final training loss", _number(f("final_train_loss"))),
        ("final validation loss", _number(f("final_val_loss")))])
    curves = f"![training curves]({CURVES_NAME})\n" if f("curves") else ""
    return _render(data, f("title") or "ExtremeBERT pretrained model", [
        ("Model", "A BERT encoder pretrained with the masked-language-model objective by ExtremeBERT.\n\n"
                  + architecture),
        ("Data", data_text), ("Training", training), ("Training curves", curves),
        ("How to use", _loading("AutoModelForMaskedLM", "fill-mask")),
        ("Reproduce", _reproduce(f("command") or "", f("config_text") or ""))])


def model_index(model_name: str, task: dict, results: dict) -> list:
    """The ``EvalResult`` list of a finetuned model: one per metric of ``results`` (the dev metrics the job recorded
    under the task table's names). ``task`` holds ``type`` (text-classification, token-classification), ``name``,
    and the dataset's ``dataset_type`` (a hub name or the task's own name) and optional ``dataset_config``."""
    from huggingface_hub import EvalResult

    return [EvalResult(task_type=task["type"], task_name=task["name"], dataset_type=task["dataset_type"],
                       dataset_name=task["name"], dataset_config=task.get("dataset_config"), dataset_split="validation",
                       metric_type=metric, metric_name=metric, metric_value=float(value))
            for metric, value in sorted(results.items())
            if isinstance(value, (int, float)) and not isinstance(value, bool)]


def finetuned_card(facts: dict) -> str:
    """The card of a finetuned model (a job's ``model/``). ``facts`` holds what the job recorded (see
    ``finetuning.job_run.card_facts``): ``task`` as for ``model_index``, ``dev_results``, ``base_model``, ..."""
    from huggingface_hub import ModelCardData

    f = facts.get
    task = f("task")
    base = f("base_model") or ""
    data = ModelCardData(
        library_name=LIBRARY, pipeline_tag=task["type"], license=f("license") or None,
        tags=TAGS + ["finetuned", task["name"]], base_model=base if f("base_model_on_hub") else None,
        datasets=[task["dataset_type"]] if task.get("dataset_on_hub") else None, model_name=f("title"),
        eval_results=model_index(f("title") or task["name"], task, f("dev_results") or {}) or None)
    dev = _rows([(metric, _number(value)) for metric, value in sorted((f("dev_results") or {}).items())])
    training = _rows([
        ("base model", f"`{base}`" if base else None), ("task", task["name"]), ("data", f("data")),
        ("learning rate", f("learning_rate")), ("batch size", _number(f("batch_size"))),
        ("epochs", f("epochs")), ("seed", f("seed")), ("steps", _number(f("steps"))),
        ("wall time", f"{f('train_seconds'):.1f} s" if f("train_seconds") is not None else None),
        ("hardware", f("hardware")), ("precision", f("precision")),
        ("final training loss", _number(f("train_loss")))])
    task_class = "AutoModelForTokenClassification" if task["type"] == "token-classification" \
        else "AutoModelForSequenceClassification"
    return _render(data, f("title") or f"ExtremeBERT finetuned on {task['name']}", [
        ("Model", f"`{base}` finetuned on {task['name']} by ExtremeBERT's `run_glue.py`." if base else ""),
        ("Dev results", dev), ("Training", training), ("How to use", _loading(task_class, task["type"])),
        ("Reproduce", _reproduce(f("command") or "", ""))])


def write_card(folder, text: str) -> Path:
    """Write ``text`` as the folder's ``README.md`` (atomically: a reader never finds half a card)."""
    return write_text_atomic(Path(folder) / CARD_NAME, text)
