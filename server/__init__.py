"""askta server: the FastAPI app, the sandbox runner, the review queue and the CLI."""
