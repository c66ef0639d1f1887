"""`kfkd serve`: a web page and a JSON API over the photo pipeline (FastAPI + uvicorn): the
model served (service.py), the bounded inference queue (worker.py), the application and its
limits (app.py), the page (page.html)."""
from .._lazy import exports

EXPORTS = {
    "service": ("KeypointService", "image_json", "face_json", "MAX_PIXELS"),
    "worker": ("InferenceQueue", "Busy"),
    "app": ("create_app", "run_server", "network_warning", "MAX_UPLOAD", "QUEUE", "MAX_FILES"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
