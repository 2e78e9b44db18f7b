"""Our own 404 and 500 pages: no Django debug page, a way back, the learner's language."""

from __future__ import annotations

from django.test import RequestFactory, override_settings
from django.utils import translation
from django.views.defaults import server_error


@override_settings(DEBUG=False)
def test_a_missing_page_offers_the_way_back_in_english_and_japanese(client, db):
    english = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == 404
    page = english.content.decode()
    assert 'data-testid="not-found"' in page and "This page does not exist" in page
    assert 'href="/guide/"' in page and "Traceback" not in page
    japanese = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "このページは存在しません" in japanese


def test_a_server_error_says_it_was_not_the_learners_fault(db):
    with translation.override("en"):
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert 'data-testid="server-error"' in page and "It was not your fault" in page
