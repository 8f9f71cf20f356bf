"""The web layer: the URL map (urls.py), JSON and HTML views by subject, one error shape for the API."""
