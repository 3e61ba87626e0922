"""Airflow local settings of the deployment (mounted at ``$AIRFLOW_HOME/config/`` by
docker-compose and copied there by ``scripts/celery_stack.py``): the cluster policy that checks the
Celery queue and API pool each pipeline task declares in its DAG file (``imaging.queues.task_policy``)
and rejects tasks on queues that no worker serves or in pools that do not exist. It routes
nothing."""

from imaging.queues import task_policy

__all__ = ["task_policy"]
