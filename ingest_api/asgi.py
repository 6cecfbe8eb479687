"""ASGI entry point for uvicorn: the app with settings from the environment, logging JSON."""

from ingest_api.app import create_app
from ingest_api.logging_setup import configure_json_logging
from ingest_api.settings import Settings

settings = Settings.from_env()
configure_json_logging(settings.log_level)
app = create_app(settings)
