"""The options of the "replace the stored design?" approval (imported by the DAG at parse time:
no heavy imports here). Two buttons, no field to type."""

REPLACE_OPTION = "Replace the stored design"
KEEP_OPTION = "Keep the stored design"
REPLACE_OPTIONS = [REPLACE_OPTION, KEEP_OPTION]
