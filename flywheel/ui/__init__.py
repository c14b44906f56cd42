"""What the Airflow plugin shows (plugins/flywheel_plugin.py), without Airflow.

``files``: which lake/home files may be served and at which URL; ``timeline``: the champion and
monitoring timelines; ``evidence``: what a task instance of a run produced; ``pages``: the HTML.
The plugin only adds routes, auth and Airflow database look-ups around these.
"""
