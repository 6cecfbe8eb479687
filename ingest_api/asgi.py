"""ASGI entry point for uvicorn: the app with settings from the environment."""

from ingest_api.app import create_app
from ingest_api.settings import Settings

app = create_app(Settings.from_env())
