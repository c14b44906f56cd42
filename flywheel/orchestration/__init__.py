"""The only part of the flywheel package that imports Airflow: assets, defaults and task factories.

DAG files in ``dags/`` wire what this package builds; the work itself lives in plain modules
(``flywheel.landing``, ``flywheel.validation``, ``spark_jobs``) so it runs the same in a task,
a Kubernetes pod, or by hand.
"""
