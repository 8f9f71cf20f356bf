"""JSON answers: Flask's own JSON, byte for byte, with the compact encoder every answer uses made once."""
import json

from flask.json.provider import DefaultJSONProvider

COMPACT = {"separators": (",", ":")}  # what Flask's response() asks of dumps() out of debug mode


class JSONAnswers(DefaultJSONProvider):
    """Flask's DefaultJSONProvider; json.dumps with keyword arguments builds its encoder anew on every call, which
    costs as much as encoding a run (~6 µs of a ~10 µs answer), so the compact one is kept."""

    _encoder = None  # (the options it was made with, the encoder)

    def dumps(self, obj, **kwargs):
        if kwargs != COMPACT:
            return super().dumps(obj, **kwargs)
        options = (self.default, self.ensure_ascii, self.sort_keys)
        made = self._encoder
        if made is None or made[0] != options:
            made = self._encoder = (options, json.JSONEncoder(default=self.default, ensure_ascii=self.ensure_ascii,
                                                              sort_keys=self.sort_keys, **COMPACT))
        return made[1].encode(obj)
