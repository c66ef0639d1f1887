"""`kfkd serve`'s web application (FastAPI): the page, the JSON API, its limits and errors.

    GET  /              the page (page.html: one self-contained file, no CDN, works offline)
    POST /v1/keypoints  one or more images (multipart files) -> their faces' keypoints
    GET  /v1/model      the model's record: name, sha256, backend, detector, its JSON
    GET  /healthz       {"status": "ok"} and how many requests wait
    GET  /openapi.json  the schema (FastAPI's /docs and /redoc load their assets from a CDN:
                        off)

Every error is a 4xx or 5xx whose body is one line of JSON, ``{"error": "..."}``, and the
server goes on serving. Uploads are read in memory, never spooled to disk: the request body is
counted as it arrives and refused (413) past ``max_upload`` bytes, so a file cannot outgrow
it; an image whose header declares more than the service's ``max_pixels`` is refused (413)
before it is decoded. The work runs in worker.py's one thread behind a bounded queue; a full
queue answers 503 with a Retry-After header.

(No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations, and
``Request`` is imported inside ``create_app``.)
"""
import contextlib
from importlib import resources

from .worker import Busy, InferenceQueue

__all__ = ["create_app", "MAX_UPLOAD", "QUEUE", "MAX_FILES", "UPLOAD_SCHEMA"]

MAX_UPLOAD = 20 * 1024 * 1024      # bytes in one request
QUEUE = 8                          # requests waiting behind the one running
MAX_FILES = 32                     # images in one request
# The request body, for the OpenAPI schema: the handler parses it itself (to keep files in
# memory and to count bytes as they arrive), so FastAPI cannot infer it.
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["images"],
    "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"},
                              "description": "one or more photos (JPEG, PNG, WebP, BMP, TIFF); "
                                             "any field name is read"}}}}}}}


class _TooLarge(Exception):
    pass


def _page() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def _error(status, message, headers=None):
    from fastapi import HTTPException
    return HTTPException(status, " ".join(str(message).split()), headers=headers)


def create_app(service, max_upload: int = MAX_UPLOAD, queue_size: int = QUEUE,
               max_files: int = MAX_FILES):
    """The FastAPI app serving ``service`` (service.KeypointService, or anything with its
    ``info`` and ``keypoints``); ``max_upload`` bytes per request, ``queue_size`` requests
    waiting at most, ``max_files`` images per request."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .. import __version__
    from ..photo.photos import PhotoError, PhotoTooLarge

    jobs = InferenceQueue(queue_size)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close()

    app = FastAPI(title="kfkd serve", version=__version__, docs_url=None, redoc_url=None,
                  lifespan=lifespan,
                  description="Facial keypoints of the faces in your photos (kfkd_kit).")
    app.state.jobs, app.state.service = jobs, service
    page = _page()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    @app.get("/healthz", summary="alive, and how many requests wait")
    async def healthz():
        return {"status": "ok", "waiting": jobs.waiting, "queue": jobs.size}

    @app.get("/v1/model", summary="the model served: name, sha256, backend, its JSON record")
    async def model():
        return service.info

    @app.post("/v1/keypoints", openapi_extra=UPLOAD_SCHEMA,
              summary="the keypoints of the faces in one or more photos")
    async def keypoints(request: Request):
        uploads = await read_uploads(request, max_upload, max_files)
        try:
            return await jobs.run(service.keypoints, uploads)
        except Busy as busy:
            raise _error(503, f"busy: {jobs.size} requests are waiting already; try again in "
                              f"{busy.retry_after} s", {"Retry-After": str(busy.retry_after)})
        except PhotoTooLarge as exc:
            raise _error(413, exc)
        except PhotoError as exc:
            raise _error(422, exc)

    return app


async def read_uploads(request, limit: int, max_files: int) -> list[tuple[str, bytes]]:
    """[(file name, bytes)] of a multipart request's files, read in memory; 415 for a body
    that is not multipart or a part that is not an image, 413 past ``limit`` bytes, 400 for a
    malformed body, 422 for no file or an empty one."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise _error(415, f"send the images as multipart/form-data files, not "
                          f"{kind.split(';')[0] or 'a body without a content type'}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _error(413, f"the request is {int(length):,} bytes, more than the {limit:,} allowed")

    async def counted():
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _TooLarge
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=max_files, max_fields=max_files)
    parser.spool_max_size = limit + 1      # in memory: never rolled over to a temporary file
    try:
        form = await parser.parse()
    except _TooLarge:
        raise _error(413, f"the request is more than the {limit:,} bytes allowed") from None
    except MultiPartException as exc:
        raise _error(400, f"not a readable multipart body: {exc.message}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise _error(422, "no image in the request: send one or more files (field 'images')")
    uploads = []
    for number, upload in enumerate(files, 1):
        name = upload.filename or f"image{number}"
        kind = (upload.content_type or "application/octet-stream").split(";")[0].strip()
        if not (kind.startswith("image/") or kind == "application/octet-stream"):
            raise _error(415, f"{name}: {kind} is not an image type")
        data = await upload.read()
        if not data:
            raise _error(422, f"{name}: an empty file")
        uploads.append((name, data))
    await form.close()
    return uploads


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def network_warning(host: str) -> str | None:
    """The one line printed when ``host`` is not a loopback address, else None."""
    if host in LOOPBACK:
        return None
    return (f"warning: --host {host} makes the server reachable from the network: anyone who "
            "can reach this machine can send it images (there is no login)")


def run_server(service, host: str = "127.0.0.1", port: int = 8000, say=print, warn=print,
               **limits):
    """Serve ``service`` with uvicorn on ``host``:``port`` until Ctrl-C; ``limits``: those of
    ``create_app``."""
    import uvicorn
    app = create_app(service, **limits)
    line = network_warning(host)
    if line:
        warn(line)
    shown = f"[{host}]" if ":" in host else host
    say(f"serving {service.path} ({service.info['backend']}, {service.info['detector']} "
        f"detector) at http://{shown}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
