"""Child-process entry for one stage: ``python -m pipeline.run_stage MODULE:FUNCTION RESOLVED_CONFIG.yaml``.

The pipeline runs each stage in its own process so that DeepSpeed's launcher and GPU groups work, memory is
returned between stages, and a crash in one stage cannot corrupt the runner's state.
"""
import importlib
import sys

from pipeline.config import load_resolved_config
from pipeline.errors import ExtremeBertError


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or ":" not in argv[0]:
        print("usage: python -m pipeline.run_stage MODULE:FUNCTION RESOLVED_CONFIG.yaml", file=sys.stderr)
        return 2
    module_name, function_name = argv[0].split(":", 1)
    cfg = load_resolved_config(argv[1])
    entry = getattr(importlib.import_module(module_name), function_name)
    try:
        entry(cfg)
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
