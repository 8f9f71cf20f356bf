"""HTML routes: the dashboard page."""
from flask import Blueprint, render_template

pages = Blueprint("pages", __name__)


@pages.get("/")
def dashboard():
    return render_template("index.html")
