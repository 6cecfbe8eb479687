"""ASGI entry point for uvicorn: the app with settings from the environment, logging JSON."""

from eventtrack.settings import Settings
from ingest_api.app import create_app
from ingest_api.logging_setup import configure_json_logging

settings = Settings.from_env()
configure_json_logging(settings.log_level)
app = create_app(settings)
