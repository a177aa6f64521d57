"""Pretraining stage: the BERT model, learning-rate schedules, the Hugging Face export, the training loop.

``import pretraining`` makes the ``extremebert`` architecture (pre-LN models) known to transformers' Auto classes
without importing torch or transformers itself, which would cost seconds in processes that never touch a model
(the pipeline runner imports ``pretraining.stage`` for status checks): the registration runs right after
transformers' ``modeling_auto`` module is first imported, or at once if it already was. Every ``AutoModel*``
class lives in that module, so the registration is in place before any of them can load a model.
"""
import importlib.abc
import sys

_AUTO_MODULE = "transformers.models.auto.modeling_auto"


def register_auto_classes() -> None:
    """Register ``extremebert`` with AutoConfig/AutoModel/AutoModelForMaskedLM/AutoModelForSequenceClassification
    now (imports torch and transformers). Idempotent."""
    from pretraining.hf_model import register_auto_classes as register

    register()


class _RegisterAfterLoading(importlib.abc.Loader):
    """Delegates to the real loader of transformers' ``modeling_auto``, then registers our classes."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register_auto_classes()


class _AutoModuleWatcher(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of transformers' ``modeling_auto`` when it is first imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _AUTO_MODULE:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the look-up below from finding this finder again
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisterAfterLoading(spec.loader)
                return spec
        return None


def _arrange_registration() -> None:
    if _AUTO_MODULE in sys.modules:
        register_auto_classes()
    elif not any(isinstance(finder, _AutoModuleWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AutoModuleWatcher())


_arrange_registration()
