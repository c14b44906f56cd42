"""Alerts over real SMTP: an aiosmtpd server on a loopback port receives what the notifiers send.

Most tests build the task context by hand: a small dict with a stand-in task instance carrying only
the fields the notifiers read (ids, log_url, xcom_pull); the exceptions are the ones the real task
code raises. The last one (marked ``integration``) goes through Airflow's own task runner with
``dag.test()``: a real landing gate failure of flights_features, with Airflow's context.
"""

from __future__ import annotations

import datetime as dt
import email
import html
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pendulum
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from airflow.sdk.exceptions import AirflowFailException

from flywheel import config, landing
from flywheel.config import ConfigError
from flywheel.orchestration import alerts
from flywheel.orchestration.days import finish, outcome

# The login tests' server allows AUTH without TLS (loopback only): aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

REPO = Path(__file__).resolve().parents[2]
RECIPIENTS = "oncall@example.com, ml-team@example.com"
SETTINGS_VARS = (
    "FLYWHEEL_ALERT_EMAILS",
    "FLYWHEEL_ALERT_FROM",
    "FLYWHEEL_SMTP_HOST",
    "FLYWHEEL_SMTP_PORT",
    "FLYWHEEL_SMTP_USER",
    "FLYWHEEL_SMTP_PASSWORD",
    "FLYWHEEL_SMTP_STARTTLS",
    "FLYWHEEL_SMTP_SSL",
    "FLYWHEEL_SMTP_TIMEOUT",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        parts = [p for p in self.message.walk() if p.get_content_type() == "text/html"]
        assert len(parts) == 1
        return html.unescape(parts[0].get_payload(decode=True).decode(parts[0].get_content_charset()))


@dataclass
class Inbox:
    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content), login)
        )
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"flywheel", b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)


def _serve(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    monkeypatch.setenv("FLYWHEEL_ALERT_EMAILS", RECIPIENTS)
    monkeypatch.setenv("FLYWHEEL_ALERT_FROM", "flywheel@example.com")
    monkeypatch.setenv("FLYWHEEL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FLYWHEEL_SMTP_PORT", str(port))
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    yield from _serve(monkeypatch)


@pytest.fixture
def smtp_with_login(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    # Plain-text AUTH is acceptable on loopback in a test; production sets STARTTLS or SSL.
    yield from _serve(monkeypatch, authenticator=_authenticator, auth_require_tls=False, auth_required=True)


class FakeTI:
    """The fields of a RuntimeTaskInstance the notifiers read."""

    def __init__(self, dag_id: str, task_id: str, xcoms: dict[str, Any] | None = None) -> None:
        self.dag_id, self.task_id = dag_id, task_id
        self.run_id = "manual__2013-01-04T00:00:00+00:00"
        self.try_number = 1
        self.log_url = f"http://127.0.0.1:8080/dags/{dag_id}/runs/manual__2013-01-04/tasks/{task_id}?try_number=1"
        self.xcoms = xcoms or {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        assert key == "return_value"
        return self.xcoms.get(task_ids)


def _context(ti: FakeTI, ds: str | None = "2013-01-04", params: dict[str, Any] | None = None, exception: Any = None):
    return {"ti": ti, "ds": ds, "params": params or {"from_ds": None, "to_ds": None}, "exception": exception}


LANDING_FAILURE = (
    "Landing gate failed for landing/flights/ds=2013-01-04: 2 check(s) failed (2 of 41 GX expectations).\n"
    "  - expect_column_values_to_not_be_null on flights.carrier: 12 unexpected of 901 (1.3%), e.g. [None]\n"
    "  - expect_column_values_to_be_between on weather.humid: 1 unexpected of 72 (1.4%), e.g. [140.0]\n"
    "Quarantined: /lake/quarantine/flights/ds=2013-01-04 (details in _validation.json there)\n"
    "Data Docs: /home/gx/data_docs/index.html\n"
    "Next: fix the source data for 2013-01-04 and rerun the day (land, then validate_landing); "
    "the rerun replaces /lake/quarantine/flights/ds=2013-01-04."
)


def _raised(fn: Any, *args: Any) -> AirflowFailException:
    with pytest.raises(AirflowFailException) as info:
        fn(*args)
    return info.value


def test_landing_gate_failure_mails_the_gate_summary(smtp: Inbox) -> None:
    # What validate_landing raises on a one-day run whose day failed the gate.
    exc = _raised(outcome, "validate_landing", [], {"2013-01-04": LANDING_FAILURE})
    ti = FakeTI("flights_features", "validate_landing")
    alerts.landing_gate()(_context(ti, exception=exc))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] flights_features 2013-01-04: landing gate failed"
    assert mail.mail_from == "flywheel@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "ml-team@example.com"]
    assert mail.message["To"] == "oncall@example.com, ml-team@example.com"
    assert "expect_column_values_to_not_be_null on flights.carrier: 12 unexpected of 901" in mail.body
    assert "expect_column_values_to_be_between on weather.humid: 1 unexpected of 72" in mail.body
    assert "Next: fix the source data for 2013-01-04 and rerun the day" in mail.body
    assert ti.log_url in mail.body
    assert mail.login is None


def test_bad_range_params_mail_says_so_not_landing_failed(smtp: Inbox) -> None:
    from flywheel.orchestration.days import run_days

    exc = _raised(run_days, None, {"from_ds": "2013-01-05", "to_ds": "2013-01-02"})
    ti = FakeTI("flights_features", "land")
    alerts.GateFailureAlert("landing")(_context(ti, exception=exc))

    [mail] = smtp.messages
    assert mail.subject.endswith(": bad from_ds/to_ds Params, nothing ran"), mail.subject
    assert "2013-01-05..2013-01-02 ends before it starts" in mail.body


def test_range_run_check_days_failure_names_the_quarantined_days(smtp: Inbox) -> None:
    exc = _raised(
        finish,
        "flights_features",
        {
            "days": ["2013-01-01", "2013-01-02", "2013-01-03", "2013-01-05"],
            "failed": {"2013-01-04": LANDING_FAILURE, "2013-01-06": "Features gate failed for ...: 1 check(s)"},
        },
    )
    ti = FakeTI("flights_features", "check_days")
    alerts.QuarantineAlert()(
        _context(ti, ds=None, params={"from_ds": "2013-01-01", "to_ds": "2013-01-06"}, exception=exc)
    )

    [mail] = smtp.messages
    assert mail.subject == (
        "[flywheel] flights_features 2013-01-01..2013-01-06: 2 day(s) quarantined (2013-01-04, 2013-01-06)"
    )
    assert "4 day(s) done (2013-01-01, 2013-01-02, 2013-01-03, 2013-01-05)" in mail.body
    assert "weather.humid: 1 unexpected of 72" in mail.body


def test_training_set_gate_failure_names_the_as_of_date(smtp: Inbox) -> None:
    message = (
        "training set 2013-01-27..2013-02-23 (20114 rows) failed the training gate: "
        "missing feature partitions: 2013-02-08, 2013-02-09. "
        "Fix or rebuild the features of the window (flights_features DAG), or move the window."
    )
    ti = FakeTI(
        "flights_retraining",
        "train_and_gate.validate_training_set",
        {"train_and_gate.assemble_training_set": {"as_of": "2013-02-23", "window_days": 28}},
    )
    alerts.training_set_gate()(_context(ti, ds=None, params={}, exception=AirflowFailException(message)))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] flights_retraining as of 2013-02-23: training-set gate failed"
    assert "missing feature partitions: 2013-02-08, 2013-02-09" in mail.body
    assert "Fix or rebuild the features of the window" in mail.body


def test_a_crash_in_a_gate_task_is_not_called_a_gate_verdict(smtp: Inbox) -> None:
    ti = FakeTI("flights_features", "validate_features")
    alerts.features_gate()(_context(ti, exception=FileNotFoundError("/lake/features/flights_candidate/ds=2013-01-04")))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] flights_features 2013-01-04: validate_features crashed (FileNotFoundError)"
    assert "/lake/features/flights_candidate/ds=2013-01-04" in mail.body


EVIDENCE = {
    "ds": "2013-02-16",
    "decision": "drift",
    "champion_version": 1,
    "drift_share": 0.45,
    "n_drifted": 3,
    "drifted_features": ["temp", "dewp", "carrier_delay_rate_28d"],
    "prediction_drift": 1.42,
    "roc_auc": 0.571,
    "quality_ds": "2013-02-16",
    "champion_holdout_auc": 0.643,
    "fired": ["data_drift", "prediction_drift", "quality"],
    "streak": 2,
    "required": 2,
    "streak_days": ["2013-02-15", "2013-02-16"],
    "reasons": ["45% of the features drifted (> 30%)", "prediction drift 1.42 > 1.25"],
    "report_path": "/lake/reports/monitoring/ds=2013-02-16/report.html",
    "metrics_path": "/lake/reports/monitoring/ds=2013-02-16/metrics.json",
    "drift_days": ["2013-02-16", "2013-02-17"],
}


def test_drift_decision_mails_the_evidence(smtp: Inbox) -> None:
    ti = FakeTI("flights_monitoring", "drift_detected", {"drift_detected": EVIDENCE})
    alerts.DriftAlert()(_context(ti, ds="2013-02-16"))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] drift on 2013-02-16 (v1): retraining starts"
    body = mail.body
    assert "45% of the monitored features drifted (3; signals above 30%): temp, dewp, carrier_delay_rate_28d" in body
    assert "Prediction drift: 1.42" in body
    assert "ROC AUC 0.571 (the 7 labelled days ending 2013-02-16) vs the champion's holdout 0.643" in body
    assert "2 consecutive signalling day(s), 2 required (2013-02-15, 2013-02-16)" in body
    assert "prediction drift 1.42 > 1.25" in body
    assert "Drift days of this range run: 2013-02-16, 2013-02-17" in body
    assert "/lake/reports/monitoring/ds=2013-02-16/report.html" in body


def _promotion_ti(decision: str, version: int, champion: dict[str, float] | None, champion_version: int | None):
    challenger = {"roc_auc": 0.6243, "pr_auc": 0.4012, "log_loss": 0.5561, "roc_auc__carrier__UA": 0.61}
    after = version if decision == "promoted" else champion_version
    record = {
        "decision": decision,
        "reason": f"{decision}: roc_auc 0.6243 vs champion 0.5431 + margin 0.002",
        "version": version,
        "champion_before": champion_version,
        "champion_after": after,
        "as_of": "2013-02-23",
        "run_id": "abc123",
    }
    evaluated = {
        "as_of": "2013-02-23",
        "model_version": version,
        "holdout_days": [f"2013-02-{d}" for d in range(17, 24)],
        "challenger": challenger,
        "champion": champion,
        "champion_version": champion_version,
    }
    return FakeTI(
        "flights_retraining",
        "train_and_gate.promote_or_reject",
        {"train_and_gate.promote_or_reject": record, "train_and_gate.evaluate_challenger": evaluated},
    )


def test_promotion_mails_the_numbers_against_the_champion(smtp: Inbox) -> None:
    champion = {"roc_auc": 0.5431, "pr_auc": 0.3522, "log_loss": 0.5902}
    alerts.PromotionAlert()(_context(_promotion_ti("promoted", 3, champion, 2), ds=None))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] v3 promoted as of 2013-02-23: ROC AUC 0.624 vs 0.543"
    body = mail.body
    assert "Challenger v3 (trained as of 2013-02-23, MLflow run abc123) was promoted." in body
    assert "Champion before: v2; after: v3; compared with: v2 on the same holdout days 2013-02-17..2013-02-23" in body
    assert "ROC AUC               0.6243          0.5431" in body
    assert "PR AUC                0.4012          0.3522" in body
    assert "roc_auc__carrier__UA" not in body  # slices stay in MLflow; the mail shows overall metrics


def test_rejection_says_the_champion_stays(smtp: Inbox) -> None:
    champion = {"roc_auc": 0.6301, "pr_auc": 0.41, "log_loss": 0.55}
    alerts.PromotionAlert()(_context(_promotion_ti("rejected", 4, champion, 3), ds=None))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] v4 rejected as of 2013-02-23: ROC AUC 0.624 vs 0.630 (champion stays v3)"
    assert "Champion before: v3; after: v3" in mail.body


def test_first_champion_has_nobody_to_beat(smtp: Inbox) -> None:
    alerts.PromotionAlert()(_context(_promotion_ti("promoted", 1, None, None), ds=None))

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] v1 promoted as of 2013-02-23: ROC AUC 0.624, no champion to beat"
    assert "ROC AUC               0.6243             n/a" in mail.body


def test_login_with_the_configured_user(smtp_with_login: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_SMTP_USER", "flywheel")
    monkeypatch.setenv("FLYWHEEL_SMTP_PASSWORD", "s3cret")
    ti = FakeTI("flights_monitoring", "drift_detected", {"drift_detected": EVIDENCE})
    alerts.DriftAlert()(_context(ti))

    [mail] = smtp_with_login.messages
    assert mail.login == "flywheel"


def test_wrong_password_is_logged_and_the_task_goes_on(
    smtp_with_login: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLYWHEEL_SMTP_USER", "flywheel")
    monkeypatch.setenv("FLYWHEEL_SMTP_PASSWORD", "wrong")
    ti = FakeTI("flights_monitoring", "drift_detected", {"drift_detected": EVIDENCE})
    with caplog.at_level(logging.ERROR, logger=alerts.__name__):
        alerts.DriftAlert()(_context(ti))

    assert smtp_with_login.messages == []
    assert "alert NOT sent" in caplog.text and "SMTPAuthenticationError" in caplog.text
    assert "wrong" not in caplog.text  # the password is never logged


def test_alerts_off_sends_nothing_and_raises_nothing(smtp: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_ALERT_EMAILS", "")
    assert config.load().alerts_on is False
    ti = FakeTI("flights_features", "validate_landing")
    alerts.landing_gate()(_context(ti, exception=AirflowFailException("gate failed")))
    alerts.DriftAlert()(_context(FakeTI("flights_monitoring", "drift_detected")))  # not even an XCom read
    assert smtp.messages == []


def test_unreachable_smtp_is_logged_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("FLYWHEEL_ALERT_EMAILS", RECIPIENTS)
    monkeypatch.setenv("FLYWHEEL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FLYWHEEL_SMTP_PORT", str(port))
    monkeypatch.setenv("FLYWHEEL_SMTP_TIMEOUT", "5")
    ti = FakeTI("flights_features", "validate_landing")
    exc = _raised(outcome, "validate_landing", [], {"2013-01-04": LANDING_FAILURE})
    with caplog.at_level(logging.ERROR, logger=alerts.__name__):
        alerts.landing_gate()(_context(ti, exception=exc))  # the call Airflow makes: no exception escapes

    assert "alert NOT sent: '[flywheel] flights_features 2013-01-04: landing gate failed'" in caplog.text
    assert "oncall@example.com, ml-team@example.com" in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text
    assert "ConnectionRefusedError" in caplog.text


def test_invalid_settings_are_logged_at_send_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FLYWHEEL_ALERT_EMAILS", RECIPIENTS)
    monkeypatch.setenv("FLYWHEEL_SMTP_SSL", "maybe")
    with caplog.at_level(logging.ERROR, logger=alerts.__name__):
        alerts.landing_gate()(_context(FakeTI("flights_features", "validate_landing"), exception=None))
    assert "FLYWHEEL_SMTP_SSL='maybe' is not a boolean" in caplog.text


# The settings themselves.


def test_alert_settings_defaults() -> None:
    s = config.load()
    assert s.alert_emails == () and s.alerts_on is False
    assert (s.alert_from, s.smtp_host, s.smtp_port) == ("flywheel@localhost", "localhost", 25)
    assert (s.smtp_user, s.smtp_password, s.smtp_starttls, s.smtp_ssl, s.smtp_timeout) == (
        None,
        None,
        False,
        False,
        30.0,
    )


def test_alert_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_ALERT_EMAILS", " a@example.com,,b@example.org ")
    monkeypatch.setenv("FLYWHEEL_SMTP_STARTTLS", "yes")
    monkeypatch.setenv("FLYWHEEL_SMTP_USER", "bot")
    monkeypatch.setenv("FLYWHEEL_SMTP_PASSWORD", "hunter2")
    s = config.load()
    assert s.alert_emails == ("a@example.com", "b@example.org")
    assert (s.smtp_starttls, s.smtp_port) == (True, 587)
    assert "hunter2" not in repr(s)
    monkeypatch.setenv("FLYWHEEL_SMTP_STARTTLS", "0")
    monkeypatch.setenv("FLYWHEEL_SMTP_SSL", "true")
    assert config.load().smtp_port == 465
    monkeypatch.setenv("FLYWHEEL_SMTP_PORT", "2525")
    assert config.load().smtp_port == 2525


def test_the_connection_is_built_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("FLYWHEEL_SMTP_STARTTLS", "1")
    monkeypatch.setenv("FLYWHEEL_SMTP_USER", "bot")
    monkeypatch.setenv("FLYWHEEL_SMTP_PASSWORD", "hunter2")
    conn = alerts.smtp_connection(config.load())
    assert (conn.host, conn.port, conn.login, conn.password) == ("smtp.example.com", 587, "bot", "hunter2")
    assert conn.extra_dejson["disable_tls"] is False and conn.extra_dejson["disable_ssl"] is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLYWHEEL_ALERT_EMAILS": "a@example.com, not-an-address"}, "'not-an-address' is not an email address"),
        ({"FLYWHEEL_ALERT_EMAILS": "Ops <ops@example.com>"}, "is not an email address"),
        ({"FLYWHEEL_ALERT_FROM": "flywheel"}, "FLYWHEEL_ALERT_FROM: 'flywheel' is not an email address"),
        ({"FLYWHEEL_SMTP_PORT": "0"}, "FLYWHEEL_SMTP_PORT=0: need a TCP port"),
        ({"FLYWHEEL_SMTP_PORT": "smtp"}, "FLYWHEEL_SMTP_PORT='smtp' is not an integer"),
        ({"FLYWHEEL_SMTP_STARTTLS": "1", "FLYWHEEL_SMTP_SSL": "1"}, "both on"),
        ({"FLYWHEEL_SMTP_USER": "bot"}, "FLYWHEEL_SMTP_USER and FLYWHEEL_SMTP_PASSWORD go together"),
        ({"FLYWHEEL_SMTP_TIMEOUT": "-1"}, "FLYWHEEL_SMTP_TIMEOUT=-1.0: need a number of seconds > 0"),
    ],
)
def test_bad_alert_settings_fail_with_a_clear_message(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load()


# Through Airflow's task runner (dag.test()).


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """A migrated metadata DB under the suite's throw-away AIRFLOW_HOME (dag.test() records runs)."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)


@pytest.mark.integration
def test_dag_test_a_failed_landing_gate_mails_its_checks(airflow_db, smtp: Inbox, tmp_path, monkeypatch) -> None:
    import pandas as pd

    day = dt.date(2013, 1, 4)
    source = tmp_path / "source"
    landing.export_source(source, day, day, fmt="csv")
    weather = source / "weather" / "2013-01-04.csv"
    frame = pd.read_csv(weather)
    frame.loc[frame.index[:2], "humid"] = 140.0  # relative humidity above 100%: the landing suite refuses it
    frame.to_csv(weather, index=False)
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_SOURCE", str(source))
    monkeypatch.setenv("FLYWHEEL_HISTORY_START", "2013-01-04")

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(REPO / "dags")).dags["flights_features"]
    run = dag.test(logical_date=pendulum.datetime(2013, 1, 4, tz="UTC"))
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["validate_landing"] == "failed"

    [mail] = smtp.messages
    assert mail.subject == "[flywheel] flights_features 2013-01-04: landing gate failed"
    assert mail.rcpt_tos == ["oncall@example.com", "ml-team@example.com"]
    assert "Landing gate failed for landing/flights/ds=2013-01-04" in mail.body
    assert "weather.humid" in mail.body
    assert "Next: fix the source data for 2013-01-04" in mail.body
    assert "/dags/flights_features/runs/" in mail.body and "/tasks/validate_landing" in mail.body
