"""Plant photo pipeline: ingest photos to S3, run ML (segment, tiled detection, estimation),
aggregate, and keep per-photo job status with warning states and reprocessing history.

Modules: ``models`` (tables), ``exif`` (decode/validate/EXIF), ``storage`` (S3 keys, uploads,
thumbnails, lifecycle), ``geolocate`` (GPS → storage location), ``segment`` (container regions),
``detect`` (classical and YOLO+SAHI backends), ``estimate`` (missed plants from vegetation area),
``aggregate`` (totals, quality, annotated image), ``analyze`` (the ML of one photo),
``catalog`` (warehouses/locations), ``pipeline`` (the steps the DAGs call), ``jobs`` (the
upload-session/job rows and ids both the pipeline and the web app write), ``samples``
(deterministic demo/test trays). Staging a web upload and the job-status queries live in the web
app's package (``include.webapp.staging`` / ``include.webapp.queries``), which depends on this
one (never the other way round).

Detector backends: ``classical`` (default, no weights) and ``yolo_sahi`` (optional extra
``pip install ultralytics sahi``; its test is ``tests/include/photos/yolo_extra_check.py``, run
in a separate venv — CI does not run it).
"""
