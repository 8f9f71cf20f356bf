"""What each JSON route reads and answers, as pydantic models: they validate requests and write the API document."""
