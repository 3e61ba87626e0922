"""Plant photo pipeline: ingest photos to S3, run ML (segment, tiled detection, estimation),
aggregate, and keep per-photo job status with warning states and reprocessing history.

Modules: ``models`` (tables), ``exif`` (decode/validate/EXIF), ``storage`` (S3 keys, uploads,
thumbnails, lifecycle), ``geolocate`` (GPS → storage location), ``segment`` (container regions),
``detect`` (classical and YOLO+SAHI backends), ``estimate`` (missed plants from vegetation area),
``aggregate`` (totals, quality, annotated image), ``pipeline`` (the steps the DAGs call),
``samples`` (deterministic demo/test trays).
"""
