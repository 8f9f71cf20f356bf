"""Entry point for `celery -A celery_app worker|beat`: the one place an app is built at import."""
from app import create_app

flask_app = create_app(web=False)  # a Celery process serves no page
celery = flask_app.extensions["celery"]
app = celery
