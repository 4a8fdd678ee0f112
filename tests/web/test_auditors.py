"""Auditors' pages: the delivery log with filters and CSV, and the audit verification."""

from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session, sessionmaker

from broadcaster.settings import Settings
from tests.conftest import Staff
from tests.web.conftest import People, field_error, sent_alert


def test_the_log_filters_and_masks(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = sent_alert(db, settings, staff)
    page = people.auditor.get(f"/console/log?alert={alert_id}&channel=sms&district=wola")
    assert page.status_code == 200
    assert page.text.count(f'href="/console/alerts/{alert_id}"') == 2
    assert "601000001" not in page.text  # contact points are masked
    none = people.auditor.get(f"/console/log?alert={alert_id}&status=failed")
    assert f'href="/console/alerts/{alert_id}"' not in none.text


def test_a_bad_filter_is_said_next_to_it(people: People) -> None:
    for query, field in (
        ("district=atlantis", "district"),
        ("alert=abc", "alert"),
        ("from=jutro", "from"),
    ):
        answer = people.auditor.get(f"/console/log?{query}")
        assert answer.status_code == 422, query
        assert field_error(answer.text, field), query


def test_the_csv_has_every_matching_row_masked(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = sent_alert(db, settings, staff)
    answer = people.auditor.get(f"/console/log.csv?alert={alert_id}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"sent"}
    assert all("601000001" not in r["contact"] for r in rows)


def test_the_audit_trail_verifies_intact(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    sent_alert(db, settings, staff)
    answer = people.auditor.get("/console/audit?verify=1")
    assert answer.status_code == 200
    assert 'id="verdict">Nienaruszony' in answer.text
    assert "alert.approve" in answer.text


def test_the_sandbox_viewer_is_not_served_unless_the_sandbox_runs_here(people: People) -> None:
    # These settings point SMSAPI at api.smsapi.pl, as production does.
    assert people.admin.get("/console/sandbox").status_code == 404
    assert "/console/sandbox" not in people.admin.get("/console").text
