"""Walking a yacs config tree by dotted keys (``"PRETRAIN.ESD.RATIO"``)."""
from yacs.config import CfgNode as CN


def leaf_items(node, prefix=""):
    """(dotted key, value) for every leaf of a config tree."""
    for key, value in node.items():
        if isinstance(value, CN):
            yield from leaf_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def get_key(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def set_key(cfg, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value
