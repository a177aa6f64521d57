"""How the console writes a duration or an ETA, the same in every long stage (pretraining's progress lines, the
finetuning search's)."""


def format_duration(seconds: float) -> str:
    """``45s``, ``3m12s``, ``2h05m``, ``3d04h``: short, and never more precise than an estimate deserves."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
