"""What a JSON route reads from its request, checked once: the JSON body and whole-number arguments."""
from flask import request

from panel.errors import ValidationError

ID_MAX = 2**62  # past any id a table will reach, and inside every database's integer


def json_object(required=True):
    """The JSON object sent; 400 for anything else. A missing body counts as {} where nothing is required."""
    if not required and not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object (Content-Type: application/json)")
    return data


def whole_arg(name, low, high, default=None):
    """A whole-number query argument within [low, high], or 400 naming it."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(name, "must be a whole number") from None
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def whole_field(data, field, low, high, default=None):
    """A whole-number field of a JSON body within [low, high] (true and false are not numbers)."""
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"must be a whole number from {low} to {high}")
    return value
