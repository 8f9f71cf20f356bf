"""Logging to the console and to instance/logs/panel.log."""
import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
LOG_MAX_BYTES = 5 * 1024 * 1024


def setup_logging(instance_path):
    """Attach one file handler and one console handler to the `panel` logger, once."""
    logger = logging.getLogger("panel")
    if getattr(logger, "_panel_configured", None) == instance_path:
        return logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    file_handler = RotatingFileHandler(Path(instance_path) / "logs" / "panel.log",
                                       maxBytes=LOG_MAX_BYTES, backupCount=3)
    console = logging.StreamHandler()
    for handler in (file_handler, console):
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger._panel_configured = instance_path
    return logger
