"""Mail alerts: gate failures, the drift policy's decision, and every promotion or rejection.

Each alert is a ``BaseNotifier`` attached as a task callback (``on_failure_callback`` of the gates
and of a range run's ``check_days``, ``on_success_callback`` of ``drift_detected`` and ``promote_or_reject``). It reads
what happened from the task context (the exception of a failed task, the return value of a
successful one) and sends one mail through the SMTP provider's ``SmtpNotifier``.

The SMTP connection is built from the ``FLYWHEEL_SMTP_*`` settings when a mail is sent: no Airflow
Connection is stored and DAG files hold no secret. With no ``FLYWHEEL_ALERT_EMAILS`` (the default)
alerts are off and a callback does nothing. A mail that cannot be sent is logged (what, to whom,
through which server, why) and never fails the task: the task's own outcome is what matters.
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from flywheel import config
from flywheel.orchestration.days import RangeParamsError

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

# The id the SMTP hook is given; the connection behind it comes from the settings, never from storage.
SMTP_CONN_ID = "flywheel_smtp"
SUBJECT_PREFIX = "[flywheel]"
METRIC_NAMES = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "log_loss": "log loss", "brier": "Brier", "f1": "F1"}


def smtp_connection(settings: config.Settings) -> Connection:
    """The SMTP connection the settings describe, in the form ``SmtpHook`` reads."""
    from airflow.sdk import Connection

    extra = {
        "from_email": settings.alert_from,
        "disable_ssl": not settings.smtp_ssl,
        "disable_tls": not settings.smtp_starttls,
        "timeout": settings.smtp_timeout,
        # A failed send is logged and the task goes on: one attempt, no retry loop holding the worker.
        "retry_limit": 0,
    }
    return Connection(
        conn_id=SMTP_CONN_ID,
        conn_type="smtp",
        host=settings.smtp_host,
        port=settings.smtp_port,
        login=settings.smtp_user,
        password=settings.smtp_password,
        extra=json.dumps(extra),
    )


def send_mail(settings: config.Settings, subject: str, text: str, link: str | None, context: Context) -> bool:
    """Send one alert with the SMTP provider's ``SmtpNotifier``; log and return False when it cannot."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class SettingsSmtpHook(SmtpHook):
        """``SmtpHook`` whose connection is built from the settings instead of looked up."""

        def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]
            return smtp_connection(settings)

    body = f'<pre style="font-family: monospace">{html.escape(text, quote=False)}</pre>'
    if link:
        body += f'\n<p><a href="{html.escape(link)}">Open the task in Airflow</a>: {html.escape(link)}</p>'
    notifier = SmtpNotifier(
        to=list(settings.alert_emails),
        from_email=settings.alert_from,
        subject=subject,
        html_content=body,
        smtp_conn_id=SMTP_CONN_ID,
    )
    notifier.hook = SettingsSmtpHook(smtp_conn_id=SMTP_CONN_ID)  # replaces the cached connection lookup
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        # notify(), not __call__(): our subject and body are final text, not Jinja templates.
        notifier.notify(context)
    except (OSError, AirflowException) as exc:  # smtplib's errors are OSErrors; the hook raises AirflowException
        log.error(
            "alert NOT sent: %r to %s through SMTP server %s failed (%s: %s). The task's outcome is unaffected; "
            "check FLYWHEEL_SMTP_HOST/PORT/STARTTLS/SSL/USER and that the server accepts mail from %s.",
            subject, ", ".join(settings.alert_emails), where, type(exc).__name__, exc, settings.alert_from,
        )  # fmt: skip
        return False
    log.info("alert sent: %r to %s through %s", subject, ", ".join(settings.alert_emails), where)
    return True


def task_link(context: Context, settings: config.Settings) -> str | None:
    """The task instance in the Airflow UI: its ``log_url``, else built from ``settings.airflow_url``."""
    ti = context.get("ti")
    if ti is None:
        return None
    url = getattr(ti, "log_url", None)
    if url:
        return str(url)
    return f"{settings.airflow_url}/dags/{ti.dag_id}/runs/{quote(ti.run_id, safe='')}/tasks/{ti.task_id}"


def run_label(context: Context) -> str:
    """The day(s) a run works on: its ``from_ds..to_ds`` Params for a range run, else its ``ds``."""
    params = context.get("params") or {}
    first, last = params.get("from_ds"), params.get("to_ds")
    if first:
        return f"{first}..{last}" if last and last != first else str(first)
    return str(context.get("ds") or "(no date)")


def _num(value: Any, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(float(value), fmt)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0%}"


class FlywheelAlert(BaseNotifier):
    """An alert: nothing when alerts are off; else compose the mail from the context and send it."""

    def compose(self, context: Context, settings: config.Settings) -> tuple[str, str] | None:
        """(subject, plain-text body), or None when there is nothing to tell."""
        raise NotImplementedError

    def notify(self, context: Context) -> None:
        try:
            settings = config.load()
        except config.ConfigError as exc:
            log.error("alert NOT sent by %s: the settings are invalid: %s", type(self).__name__, exc)
            return
        if not settings.alerts_on:
            log.debug("alerts are off (FLYWHEEL_ALERT_EMAILS is empty): %s sends nothing", type(self).__name__)
            return
        mail = self.compose(context, settings)
        if mail is None:
            return
        subject, text = mail
        send_mail(settings, subject, text, task_link(context, settings), context)


def _ti_line(context: Context) -> str:
    ti = context["ti"]
    return f"DAG {ti.dag_id}, run {ti.run_id}, task {ti.task_id} (try {ti.try_number})"


class GateFailureAlert(FlywheelAlert):
    """``on_failure_callback`` of a data gate: the gate's message (day, failed checks, what to do)."""

    def __init__(self, gate: str, *, as_of_task: str | None = None) -> None:
        """``gate`` names it in the subject ("landing gate"); ``as_of_task`` is a task of the same
        task group whose XCom carries the ``as_of`` date (the training-set gate works on a window,
        not on a run's day)."""
        super().__init__()
        self.gate = gate
        self.as_of_task = as_of_task

    def _label(self, context: Context) -> str:
        if self.as_of_task:
            ti = context["ti"]
            group = ti.task_id.rpartition(".")[0]
            assembled = ti.xcom_pull(task_ids=f"{group}.{self.as_of_task}" if group else self.as_of_task) or {}
            as_of = assembled.get("as_of") or (context.get("params") or {}).get("as_of")
            if as_of:
                return f"as of {as_of}"
        return run_label(context)

    def compose(self, context: Context, settings: config.Settings) -> tuple[str, str]:
        exc = context.get("exception")
        ti = context["ti"]
        label = self._label(context)
        if isinstance(exc, RangeParamsError):  # nothing was landed or gated: the Params were wrong
            what = "bad from_ds/to_ds Params, nothing ran"
            lead = "The run's days could not be worked out:"
        elif isinstance(exc, AirflowFailException):
            what = f"{self.gate} failed"
            lead = f"The {self.gate} stopped {label}. What failed and what to do:"
        else:
            what = f"{ti.task_id} crashed ({type(exc).__name__ if exc else 'no exception'})"
            lead = f"{ti.task_id} failed with an error, not a gate verdict: see the task log. The error:"
        subject = f"{SUBJECT_PREFIX} {ti.dag_id} {label}: {what}"
        text = f"{_ti_line(context)}\n\n{lead}\n\n{exc if exc is not None else '(no exception in the context)'}\n"
        return subject, text


class QuarantineAlert(FlywheelAlert):
    """``on_failure_callback`` of a range run's ``check_days`` (features, scoring, monitoring): which days were left out and why."""

    def compose(self, context: Context, settings: config.Settings) -> tuple[str, str]:
        exc = context.get("exception")
        ti = context["ti"]
        message = str(exc) if exc is not None else "(no exception in the context)"
        failed = re.findall(r"^ds=(\d{4}-\d{2}-\d{2}):", message, flags=re.MULTILINE)
        if isinstance(exc, AirflowFailException) and failed:
            what = f"{len(failed)} day(s) quarantined ({', '.join(failed)})"
            lead = "These days could not be done (quarantined, or failed on the way); the run's other days were done:"
        else:
            what = f"{ti.task_id} failed"
            lead = f"{ti.task_id} failed:"
        subject = f"{SUBJECT_PREFIX} {ti.dag_id} {run_label(context)}: {what}"
        return subject, f"{_ti_line(context)}\n\n{lead}\n\n{message}\n"


class DriftAlert(FlywheelAlert):
    """``on_success_callback`` of ``drift_detected``: the evidence of the drift event it emitted."""

    def compose(self, context: Context, settings: config.Settings) -> tuple[str, str] | None:
        ti = context["ti"]
        ev = ti.xcom_pull(task_ids=ti.task_id)
        if not ev:
            log.warning("drift alert: %s returned no evidence; nothing to send", ti.task_id)
            return None
        version = ev.get("champion_version")
        features = ev.get("drifted_features") or []
        subject = f"{SUBJECT_PREFIX} drift on {ev['ds']} (v{version}): retraining starts"
        lines = [
            _ti_line(context),
            "",
            f"The drift policy called drift on {ev['ds']} for the champion v{version}: "
            f"{ev.get('streak')} consecutive signalling day(s), {ev.get('required')} required "
            f"({', '.join(ev.get('streak_days') or [])}).",
            "Why: " + ("; ".join(ev.get("reasons") or []) or "n/a"),
            "",
            f"Data drift:       {_pct(ev.get('drift_share'))} of the monitored features drifted "
            f"({ev.get('n_drifted', len(features))}; signals above {settings.drift_share_threshold:.0%}): "
            + (", ".join(features) or "none"),
            f"Prediction drift: {_num(ev.get('prediction_drift'), '.2f')} "
            f"(in units of the champion's 95% day level; signals above {settings.prediction_drift_threshold})",
            f"Quality:          ROC AUC {_num(ev.get('roc_auc'))} (the {settings.quality_window_days} labelled days "
            f"ending {ev.get('quality_ds') or ev['ds']}) "
            f"vs the champion's holdout {_num(ev.get('champion_holdout_auc'))} "
            f"(signals when more than {settings.quality_drop} lower)",
            "Fired:            " + (", ".join(ev.get("fired") or []) or "none"),
        ]
        if ev.get("drift_days"):
            lines.append(f"Drift days of this range run: {', '.join(ev['drift_days'])}")
        lines += [
            "",
            f"Report:  {ev.get('report_path', 'n/a')}",
            f"Metrics: {ev.get('metrics_path', 'n/a')}",
            "",
            "Next: the scheduler starts flights_retraining on this drift event; its guard skips it within "
            f"{settings.retrain_cooldown_days} day(s) of a promotion or an earlier retraining (the skip says why "
            "in should_retrain's log). A promotion or rejection mail follows a retraining.",
        ]
        return subject, "\n".join(lines) + "\n"


class PromotionAlert(FlywheelAlert):
    """``on_success_callback`` of ``promote_or_reject``: the decision with the challenger's and the
    champion's holdout metrics (from ``evaluate_challenger`` of the same group)."""

    def compose(self, context: Context, settings: config.Settings) -> tuple[str, str] | None:
        ti = context["ti"]
        record = ti.xcom_pull(task_ids=ti.task_id)
        if not record:
            log.warning("promotion alert: %s returned no record; nothing to send", ti.task_id)
            return None
        group = ti.task_id.rpartition(".")[0]
        evaluated = ti.xcom_pull(task_ids=f"{group}.evaluate_challenger" if group else "evaluate_challenger") or {}
        challenger = evaluated.get("challenger") or {}
        champion = evaluated.get("champion") or {}
        compared = evaluated.get("champion_version")
        primary = settings.primary_metric
        name = METRIC_NAMES.get(primary, primary)
        version, decision, as_of = record.get("version"), record.get("decision"), record.get("as_of")
        ours = challenger.get(primary)
        if champion.get(primary) is not None:
            numbers = f"{name} {_num(ours)} vs {_num(champion[primary])}"
        else:
            numbers = f"{name} {_num(ours)}, no champion to beat"
        stays = "" if decision == "promoted" else f" (champion stays {_vname(record.get('champion_after'))})"
        subject = f"{SUBJECT_PREFIX} v{version} {decision} as of {as_of}: {numbers}{stays}"
        lines = [
            _ti_line(context),
            "",
            f"Challenger v{version} (trained as of {as_of}, MLflow run {record.get('run_id')}) was {decision}.",
            f"Reason: {record.get('reason')}",
            f"Champion before: {_vname(record.get('champion_before'))}; after: {_vname(record.get('champion_after'))}; "
            f"compared with: {_vname(compared)} on the same holdout days {_span(evaluated.get('holdout_days'))}",
            "",
            f"{'holdout metric':<16}{'v' + str(version):>12}{'champion ' + _vname(compared):>16}",
        ]
        overall = sorted(k for k in {*challenger, *champion} if "__" not in k)
        for key in overall:
            theirs = champion.get(key)
            lines.append(
                f"{METRIC_NAMES.get(key, key):<16}{_num(challenger.get(key), '.4f'):>12}{_num(theirs, '.4f'):>16}"
            )
        lines += [
            "",
            "History: python -m flywheel.registry history   "
            "(roll back: python -m flywheel.registry rollback --to-version N --reason ...)",
        ]
        return subject, "\n".join(lines) + "\n"


def _span(days: Any) -> str:
    """``[first, ..., last]`` -> ``first..last``."""
    if not days:
        return "n/a"
    return f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0])


def _vname(version: Any) -> str:
    return "none" if version is None else f"v{version}"


def landing_gate() -> GateFailureAlert:
    return GateFailureAlert("landing gate")


def features_gate() -> GateFailureAlert:
    return GateFailureAlert("features gate")


def training_set_gate() -> GateFailureAlert:
    return GateFailureAlert("training-set gate", as_of_task="assemble_training_set")
