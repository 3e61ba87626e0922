"""Airflow local settings of the deployment (mounted at ``$AIRFLOW_HOME/config/`` by
docker-compose and copied there by ``scripts/celery_stack.py``): the cluster policy that routes the
pipelines' tasks to their Celery queue and API pool (``imaging.queues.TASK_ROUTES``) and rejects
tasks on queues that no worker serves."""

from imaging.queues import task_policy

__all__ = ["task_policy"]
