"""What a task's args and kwargs may be, whoever sends them (an ad-hoc send, a schedule, a retry): finite JSON,
valid Unicode, within a depth and a size a worker survives."""
import json

ARGS_DEPTH_MAX = 20             # levels of arrays and objects in a task's args or kwargs (the list itself is one)
ARGS_BYTES_MAX = 64 * 1024      # a task's args or kwargs as JSON, in UTF-8 bytes


def check_payload(value):
    """A task's args or kwargs: finite JSON, valid Unicode, within the depth and size limits; ValueError says which."""
    if _depth(value) > ARGS_DEPTH_MAX:
        raise ValueError(f"is nested deeper than the limit of {ARGS_DEPTH_MAX} levels")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:
        raise ValueError("must hold finite numbers only (NaN and Infinity are not JSON)") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"must be valid Unicode text (an unpaired surrogate U+{ord(exc.object[exc.start]):04X})") \
            from None
    if size > ARGS_BYTES_MAX:
        raise ValueError(f"is {size} bytes as JSON, over the limit of {ARGS_BYTES_MAX} bytes")
    return value


def _depth(value):
    """Levels of arrays and objects, counted without recursion (the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > ARGS_DEPTH_MAX:
                return level
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
