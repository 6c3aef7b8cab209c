"""The web app: factory, dependencies, errors, pages and API routes."""
