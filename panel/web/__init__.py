"""The web layer: the URL map, the JSON and HTML views by subject, one error shape."""
