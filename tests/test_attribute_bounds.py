"""Number questions take finite numbers within the question's own bounds (min/max), and a count (integer:
true) takes whole numbers only, in every channel: the refusal names the question and the rule, and nothing
is filed."""
import json
import math
import re
import xml.etree.ElementTree as ET

import pytest
import yaml
from sqlalchemy import text

from gis import catalogue as loader
from gis.errors import InvalidAttribute, InvalidInput
from gis.services import catalogue, check_bounds, validate_attributes
from tests.console_fixtures import _open_console, _pick
from tests.notify_fixtures import TOKEN, _signed
from tests.test_public import _csrf

SOUTH_BOSTON = (42.3345, -71.0398)
DOG = {"animal_type": "dog"}
RANGE = "How many animals? must be a whole number from 1 to 50"


def _count(conn):
    conn.rollback()
    return conn.scalar(text("SELECT count(*) FROM service_requests"))


@pytest.mark.parametrize("answer", ["-5", "0", "51", "1e9", 1e9, "NaN", "nan", "inf", "-Infinity", "1e400",
                                    float("nan"), float("inf")])
def test_out_of_range_and_non_finite_answers_are_refused_naming_the_question_and_range(conn, answer):
    dog = catalogue.get(conn, "animal-generic")
    with pytest.raises(InvalidAttribute) as refused:
        validate_attributes(dog, {**DOG, "animal_count": answer})
    assert refused.value.message.startswith(RANGE) and refused.value.field == "attribute[animal_count]"
    assert isinstance(refused.value, InvalidInput)


def test_answers_within_the_range_are_kept_as_numbers(conn):
    dog = catalogue.get(conn, "animal-generic")
    assert [validate_attributes(dog, {**DOG, "animal_count": a})["animal_count"] for a in ("1", " 50 ", 7, "2.0")] \
        == [1, 50, 7, 2]
    heat = catalogue.get(conn, "heat")     # a measure, not a count: fractions are answers
    assert validate_attributes(heat, {"indoor_temperature": "58.5"}) == {"indoor_temperature": 58.5}


@pytest.mark.parametrize("answer", ["2.5", 2.5, "1.000001", "49.9"])
def test_a_count_refuses_fractions_naming_the_question(conn, answer):
    dog = catalogue.get(conn, "animal-generic")
    with pytest.raises(InvalidAttribute) as refused:
        validate_attributes(dog, {**DOG, "animal_count": answer})
    assert refused.value.message == f"{RANGE}, not {answer}" and refused.value.field == "attribute[animal_count]"


def test_every_count_of_the_demo_catalogue_takes_whole_numbers_only(conn):
    counts = {a["code"]: a.get("integer") for s in catalogue.all(conn).values() for a in s.attributes
              if a["datatype"] == "number"}
    assert counts == {"animal_count": True, "lights_out": True, "needle_count": True, "item_count": True,
                      "indoor_temperature": None}


def test_a_question_without_bounds_still_refuses_what_is_not_a_finite_number():
    free = {"code": "n", "datatype": "number", "description": "Any number", "required": True}
    service = type("S", (), {"code": "t", "attributes": (free,)})()
    assert validate_attributes(service, {"n": "-1e9"}) == {"n": -1000000000}
    for answer in ("nan", "inf", "ten"):
        with pytest.raises(InvalidAttribute, match="Any number must be a number, not"):
            validate_attributes(service, {"n": answer})


def test_every_number_question_of_the_demo_catalogue_has_bounds(conn):
    numbers = [(s.code, a) for s in catalogue.all(conn).values() for a in s.attributes if a["datatype"] == "number"]
    assert len(numbers) >= 6
    for code, a in numbers:
        assert a["min"] < a["max"], (code, a)
        kind = "A whole number" if a.get("integer") else "A number"
        assert a["datatype_description"] == f"{kind} from {a['min']} to {a['max']}.", (code, a)


@pytest.mark.parametrize("bounds, why", [({"min": "1"}, "min must be a finite number"),
                                         ({"max": math.nan}, "max must be a finite number"),
                                         ({"min": True}, "min must be a finite number"),
                                         ({"min": 5, "max": 1}, "min 5 is above max 1"),
                                         ({"integer": "yes"}, "integer must be true or false")])
def test_the_catalogue_loader_refuses_bounds_that_make_no_sense(conn, tmp_path, bounds, why):
    question = {"code": "count", "datatype": "number", "description": "How many?", **bounds}
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump([{"code": "odd-bounds", "name": "Odd bounds", "attributes": [question]}]))
    with pytest.raises(InvalidInput, match=re.escape(f"service odd-bounds: attribute count: {why}")):
        loader.load_services(conn, path)
    conn.rollback()
    with pytest.raises(ValueError, match="only apply to number questions"):
        check_bounds({"code": "x", "datatype": "string", "max": 3})
    with pytest.raises(ValueError, match="integer only apply to number questions"):
        check_bounds({"code": "x", "datatype": "string", "integer": True})


@pytest.mark.parametrize("answer", [-5, 2.5, "2.5"])
def test_the_api_refuses_an_out_of_range_or_fractional_count(client, api_key, conn, answer):
    before = _count(conn)
    body = {"service_code": "animal-generic", "lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1],
            "attributes": {**DOG, "animal_count": answer}}
    answer = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json",
                         headers={"X-Api-Key": api_key})
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "invalid_attribute", "field": "attribute[animal_count]",
                                 "message": f"{RANGE}, not {body['attributes']['animal_count']}"}
    assert _count(conn) == before


@pytest.mark.parametrize("answer", ["1e9", "2.5"])
def test_open311_refuses_it_in_its_errors_format_and_publishes_no_bounds(client, api_key, conn, answer):
    before = _count(conn)
    answer = client.post("/open311/v2/requests.json", data={
        "api_key": api_key, "service_code": "animal-generic", "lat": SOUTH_BOSTON[0], "long": SOUTH_BOSTON[1],
        "attribute[animal_type]": "dog", "attribute[animal_count]": answer})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    error, = answer.get_json()
    assert error["code"] == 400 and error["description"].startswith(RANGE)
    assert _count(conn) == before
    # the service definition stays GeoReport v2 (datatype "number", no fields of ours): the range and the
    # whole numbers are said in datatype_description
    definition = client.get("/open311/v2/services/animal-generic.json").get_json()
    count, = [a for a in definition["attributes"] if a["code"] == "animal_count"]
    assert set(count) == {"variable", "code", "datatype", "required", "datatype_description", "order",
                          "description", "values"}
    assert count["datatype"] == "number" and count["datatype_description"] == "A whole number from 1 to 50."
    xml = ET.fromstring(client.get("/open311/v2/services/animal-generic.xml").get_data())
    assert xml.find(".//attribute[code='animal_count']/min") is None
    assert xml.find(".//attribute[code='animal_count']/integer") is None
    assert xml.find(".//attribute[code='animal_count']/datatype").text == "number"
    assert xml.find(".//attribute[code='animal_count']/datatype_description").text == \
        "A whole number from 1 to 50."


def test_the_forms_give_the_browser_the_range(client):
    fragment = client.get("/report/questions/animal-generic").get_data(as_text=True)
    count = re.search(r'<input id="q-animal_count"[^>]*>', fragment).group(0)
    assert 'type="number"' in count and 'min="1"' in count and 'max="50"' in count and 'step="1"' in count
    heat = client.get("/report/questions/heat").get_data(as_text=True)
    assert 'step="any"' in re.search(r'<input id="q-indoor_temperature"[^>]*>', heat).group(0)
    kind = re.search(r'<select id="q-animal_type"[^>]*>', fragment).group(0)
    assert "min=" not in kind


def test_the_public_form_says_the_range_and_files_nothing(client, conn):
    before = _count(conn)
    page = client.post("/report", data={"csrf_token": _csrf(client), "service_code": "animal-generic",
                                        "attribute[animal_type]": "dog", "attribute[animal_count]": "-5",
                                        "lat": str(SOUTH_BOSTON[0]), "lon": str(SOUTH_BOSTON[1])})
    assert page.status_code == 400 and f"{RANGE}, not -5" in page.get_data(as_text=True)
    assert _count(conn) == before


@pytest.fixture
def count_required(conn):
    """animal-generic with its number question required, so a text conversation asks it."""
    conn.execute(text("""UPDATE services SET attributes = (SELECT jsonb_agg(CASE WHEN a->>'code' = 'animal_count'
                             THEN a || '{"required": true}' ELSE a END) FROM jsonb_array_elements(attributes) a)
                          WHERE code = 'animal-generic'"""))
    conn.commit()
    catalogue.clear()
    yield
    conn.execute(text("""UPDATE services SET attributes = (SELECT jsonb_agg(CASE WHEN a->>'code' = 'animal_count'
                             THEN a || '{"required": false}' ELSE a END) FROM jsonb_array_elements(attributes) a)
                          WHERE code = 'animal-generic'"""))
    conn.commit()
    catalogue.clear()


def test_a_text_conversation_asks_with_the_range_and_asks_again_when_it_is_not_kept(
        client, conn, monkeypatch, count_required):
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)

    def text_(body, sid):
        return _signed(client, "sms", {"From": "+16175550501", "Body": body, "MessageSid": sid}).get_data(as_text=True)
    assert "What kind of animal?" in text_("stray dog at 615 E Fourth St", "SMbound1")
    asked = "How many animals? Reply with a whole number from 1 to 50."
    assert asked in text_("1", "SMbound2")
    for i, answer in enumerate(("500", "nan", "-5", "lots", "2.5")):
        again = text_(answer, f"SMbound3{i}")
        assert f"{answer} is not a whole number from 1 to 50. {asked}" in again, again
    assert "was created" in text_("2", "SMbound4")
    conn.rollback()
    filed = conn.scalar(text("SELECT attributes FROM service_requests WHERE idempotency_key = 'sms-SMbound4'"))
    assert filed == {"animal_type": "dog", "animal_count": 2}


def test_the_agent_console_marks_the_question_with_the_range(page, live_server, staff, conn):
    before = _count(conn)
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.select_option("#attr-animal_type", "dog")
    assert page.get_attribute("#attr-animal_count", "step") == "1"      # a count: the browser steps by one
    for answer in ("500", "2.5"):
        page.fill("#attr-animal_count", answer)
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#form-message:not([hidden])")
        page.wait_for_selector(f"#attr-animal_count-err:has-text('not {answer}')")
        assert page.get_attribute("#attr-animal_count", "aria-invalid") == "true"
        assert f"{RANGE}, not {answer}" in page.inner_text("#attr-animal_count-err")
    assert _count(conn) == before
