"""Roboflow dataset upload (issue 3): scan a Roboflow/YOLO folder (``dataset``), plan batches
(``batching``), upload with retries and bounded concurrency (``upload``), keep the state in the app
database (``models``, ``store``), report ``{submitted, completed, failed, pending}`` and check the
project's image count (``stats``); ``samples`` generates a small dataset with bad files."""
