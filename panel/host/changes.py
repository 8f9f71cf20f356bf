"""Change markers: a file under the instance's run/ folder that grows one byte per change, so that every panel
process (gunicorn runs several) tells with one stat whether what it keeps in memory was changed by another since."""
import os
from pathlib import Path


class ChangeMarker:
    """How many changes were marked on this instance (the file's size); mark one more with `bump()`."""

    def __init__(self, instance, name):
        self.path = Path(instance) / "run" / f"{name}.changes"

    def count(self):
        try:
            return os.stat(self.path).st_size
        except OSError:  # nothing marked yet
            return 0

    def bump(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:  # appends are atomic: concurrent changes each add their byte
            fh.write(b".")
