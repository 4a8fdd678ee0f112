"""Auditors' pages: the delivery log with filters and CSV, and the audit verification."""

from __future__ import annotations

import csv
import html
import io
import json
import re

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.settings import Settings
from tests.conftest import Staff, as_database_owner
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


def test_the_verification_hands_over_a_checkpoint_and_checks_a_pasted_one(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff, engine: Engine
) -> None:
    sent_alert(db, settings, staff)
    first = people.auditor.get("/console/audit?verify=1")
    kept = html.unescape(re.search(r'id="checkpoint-line"><code>([^<]*)<', first.text)[1])
    again = people.auditor.get("/console/audit", params={"verify": "1", "checkpoint": kept})
    assert "zgodny z punktami kontrolnymi: 1" in again.text
    seq = json.loads(kept)["seq"]
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": seq})
        connection.execute(
            text(
                "UPDATE audit_head SET seq = seq - 1, hash = (SELECT hash FROM audit_events "
                "WHERE seq = :seq)"
            ),
            {"seq": seq - 1},
        )
    cut = people.auditor.get("/console/audit", params={"verify": "1", "checkpoint": kept})
    assert 'id="verdict">NARUSZONY' in cut.text
    assert "pieczęć się nie zgadza" in cut.text
    assert 'id="checkpoint-line"' not in cut.text  # no checkpoint of a broken trail


def test_a_pasted_text_that_is_no_checkpoint_is_said_next_to_the_field(people: People) -> None:
    for pasted in ("nothing here", '{"audit_checkpoint":1,"seq":"x"}'):
        answer = people.auditor.get("/console/audit", params={"verify": "1", "checkpoint": pasted})
        assert answer.status_code == 422
        assert "punkt" in (field_error(answer.text, "checkpoint") or "")
        assert 'id="verdict"' not in answer.text


def test_a_payload_changed_into_no_json_is_shown_as_stored(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff, engine: Engine
) -> None:
    sent_alert(db, settings, staff)
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET payload = '{' WHERE seq = 1"))
    page = people.auditor.get("/console/audit?verify=1")
    assert page.status_code == 200
    assert 'id="verdict">NARUSZONY' in page.text
