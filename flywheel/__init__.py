"""Flywheel: the whole ML loop on Airflow 3."""
