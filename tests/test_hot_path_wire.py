"""bot/wire.py gives exactly what msrest gives (botbuilder 4.17.1 / msrest 0.7.1), and the msrest
behaviour it shortcuts is still there (these tests fail if it changes)."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    Entity,
    HeroCard,
    Mention,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from msrest import Deserializer, Serializer
from msrest.exceptions import SerializationError

from bench.support.channel import activity as teams_message
from bot.wire import WireReader, WireSerializer, WireWriter

MODELS = Activity._infer_class_models()


def msrest_body(model: Any, data_type: str = "Activity") -> Any:
    serializer = Serializer(MODELS)
    serializer.client_side_validation = False
    return serializer.body(copy.deepcopy(model), data_type)


def wire_writer() -> WireWriter:
    serializer = Serializer(MODELS)
    serializer.client_side_validation = False
    return WireWriter(serializer)


def reader() -> WireReader:
    return WireReader(Deserializer(MODELS))


CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [
    {"type": "TextBlock", "text": "Zebedee Example", "wrap": True, "size": None},
    {"type": "Input.Text", "id": "note", "label": "Note", "isRequired": True, "errorMessage": "Say",
     "maxLength": 500, "value": 1.5}],
    "actions": [{"type": "Action.Execute", "verb": "request.submit", "data": {"case": "c-1", "n": [1, 2, None]}}]}

INBOUND = [
    teams_message("http://127.0.0.1:1", 3, 7, 1, "bench note"),
    {**teams_message("http://127.0.0.1:1", 1, 2, 3, ""), "value": {"verb": "request.next", "inputs": {"a": "b"}},
     "replyToId": "1:abc"},
    {"type": "invoke", "name": "adaptiveCard/action", "id": "f:1", "channelId": "msteams",
     "serviceUrl": "https://smba.example/uk/", "from": {"id": "29:1", "aadObjectId": "aad-1"},
     "conversation": {"id": "a:1", "conversationType": "personal", "tenantId": "t"},
     "recipient": {"id": "28:bot"}, "value": {"action": {"type": "Action.Execute", "verb": "x", "data": {}}},
     "channelData": {"source": {"name": "message"}, "legacy": {"replyToId": "1"}}},
    {"type": "installationUpdate", "action": "add", "channelId": "msteams", "serviceUrl": "https://s/",
     "from": {"id": "29:1"}, "conversation": {"id": "19:x@thread.tacv2", "isGroup": True,
                                              "conversationType": "channel"},
     "recipient": {"id": "28:bot"}, "membersAdded": [{"id": "28:bot"}, {"id": "29:2", "name": "Q"}],
     "channelData": {"team": {"id": "19:t", "name": "Team"}, "eventType": "teamMemberAdded"}},
    {"type": "message", "text": "<at>Bot</at> help", "channelId": "msteams", "serviceUrl": "https://s/",
     "entities": [{"type": "mention", "mentioned": {"id": "28:bot", "name": "Bot"}, "text": "<at>Bot</at>"}],
     "attachments": [{"contentType": "text/html", "content": "<p>hi</p>"},
                     {"contentType": "application/vnd.microsoft.teams.file.download.info",
                      "content": {"downloadUrl": "https://x/", "fileType": "docx"}, "name": "a.docx"}],
     "conversation": {"id": "c"}, "from": {"id": "u"}, "recipient": {"id": "b"}, "unknownKey": {"x": 1}},
    {"type": "event", "name": "application/vnd.microsoft.meetingEnd", "value": {"Id": "m", "EndTime": "2026"},
     "from": {"id": "u", "role": "user"}, "conversation": {"id": "c"}, "recipient": {"id": "b"},
     "channelId": "msteams", "serviceUrl": "https://s/"},
    # odd values msrest converts: an int where a str is declared, "true" for a bool, a bad timestamp type
    {"type": "message", "text": 12, "conversation": {"id": 5, "isGroup": "true"}, "from": {"id": "u"},
     "recipient": {"id": "b"}, "channelId": "msteams", "serviceUrl": "https://s/",
     "membersAdded": [None, {"id": "m"}]},
]


@pytest.mark.parametrize("body", INBOUND)
def test_reading_an_activity_gives_what_msrest_gives(body: dict[str, Any]) -> None:
    expected = Deserializer(MODELS)("Activity", copy.deepcopy(body))
    wire = reader()
    got = wire("Activity", copy.deepcopy(body))
    assert got == expected
    assert got.serialize() == expected.serialize()
    assert wire.fast == 1


def test_a_body_msrest_refuses_is_refused_the_same_way() -> None:
    for body in ({"type": "message", "from": "not an account"}, {"type": "message", "entities": {"a": 1}}):
        with pytest.raises(Exception) as msrest_error:
            Deserializer(MODELS)("Activity", copy.deepcopy(body))
        with pytest.raises(type(msrest_error.value)):
            reader()("Activity", copy.deepcopy(body))


def test_msrest_keeps_unknown_keys_as_additional_properties() -> None:
    """WireReader copies this rule: if msrest stops doing it, this fails."""
    read = Deserializer(MODELS)("Activity", {"type": "message", "unknownKey": 1, "from": {"id": "u", "x": 2}})
    assert read.additional_properties == {"unknownKey": 1}
    assert read.from_property.additional_properties == {"x": 2}
    assert reader()("Activity", {"type": "message", "unknownKey": 1}).additional_properties == {"unknownKey": 1}


def replies() -> list[Activity]:
    inbound = Deserializer(MODELS)("Activity", teams_message("http://127.0.0.1:1", 3, 7, 1, "bench note"))
    text = TurnContext.apply_conversation_reference(MessageFactory.text("Noted for MAGS-1."),
                                                    TurnContext.get_conversation_reference(inbound))
    card = MessageFactory.attachment(Attachment(content_type="application/vnd.microsoft.card.adaptive",
                                                content=copy.deepcopy(CARD)))
    card.timestamp = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    hero = MessageFactory.attachment(Attachment(   # a model inside an "object" slot: msrest's serialize_object
        content_type="application/vnd.microsoft.card.hero",
        content=HeroCard(title="t", buttons=[CardAction(type="imBack", title="a", value="a")])))
    mention = MessageFactory.text("<at>Q</at> hi")
    mention.entities = [Mention(mentioned=ChannelAccount(id="29:q", name="Q"), text="<at>Q</at>", type="mention"),
                        Entity(type="clientInfo")]
    typing = Activity(type=ActivityTypes.typing, conversation=ConversationAccount(id="c"))
    dict_entities = MessageFactory.text("x")
    dict_entities.entities = [{"type": "clientInfo", "Locale": "en"}]   # msrest's body() makes it an Entity
    dict_from = Activity(type="message", from_property={"id": "u", "name": "N"})   # ... and a ChannelAccount
    return [text, card, hero, mention, typing, dict_entities, dict_from,
            Activity(type="message", value={"a": [1, {"b": None}], 2: "non-str key"}, channel_data=ChannelAccount(id="x"))]


@pytest.mark.parametrize("reply", replies(), ids=lambda a: str(a.type))
def test_writing_an_activity_gives_what_msrest_body_gives(reply: Activity) -> None:
    expected = msrest_body(reply)
    assert wire_writer().body(copy.deepcopy(reply), "Activity") == expected
    serializer = Serializer(MODELS)
    serializer.client_side_validation = False
    serializer.__class__ = WireSerializer
    assert json.dumps(serializer.body(copy.deepcopy(reply), "Activity")) == json.dumps(expected)


def test_writing_a_conversation_reference_gives_what_model_serialize_gives() -> None:
    inbound = Deserializer(MODELS)("Activity", INBOUND[3])
    reference = TurnContext.get_conversation_reference(inbound)
    writer = wire_writer()
    assert writer.serialize(reference) == reference.serialize()
    assert writer.fast == 1
    odd = ConversationReference(user={"id": "u"})  # type: ignore[arg-type]   # msrest refuses a dict here
    with pytest.raises(Exception) as msrest_error:
        odd.serialize()
    with pytest.raises(type(msrest_error.value)):
        writer.serialize(odd)


def test_the_common_reply_takes_the_fast_path_and_a_dict_entity_does_not() -> None:
    writer = wire_writer()
    for reply in replies()[:5]:
        writer.body(reply, "Activity")
    assert (writer.fast, writer.fallbacks) == (5, 0)
    writer.body(replies()[5], "Activity")
    assert writer.fallbacks == 1


def test_msrest_body_deserialises_before_serialising() -> None:
    """Why a dict in a model slot must go to msrest: body() first turns it into the model (here with
    a case-insensitive key), which a plain serialisation would not."""
    reply = Activity(type="message", entities=[{"type": "clientInfo", "Locale": "en"}])
    assert msrest_body(reply)["entities"] == [{"type": "clientInfo"}]
    with pytest.raises(SerializationError):
        Serializer(MODELS)._serialize(Activity(type="message", entities=[{"type": "x"}]))


def test_the_connector_client_serialiser_is_shared_with_its_operations() -> None:
    """bot/connector.py swaps the class of ``client._serialize``: its operations must use that object."""
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    client = ConnectorClient(MicrosoftAppCredentials("", ""), base_url="http://127.0.0.1:1")
    assert client.conversations._serialize is client._serialize
    assert type(client._serialize) is Serializer


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(value=JSON, channel_data=JSON, text=JSON, name=JSON)
def test_any_json_in_any_slot_reads_and_writes_as_msrest_does(value: Any, channel_data: Any, text: Any,
                                                              name: Any) -> None:
    body = {"type": "message", "value": value, "channelData": channel_data, "text": text,
            "from": {"id": "u", "name": name}, "conversation": {"id": "c"}}
    try:
        expected = Deserializer(MODELS)("Activity", copy.deepcopy(body))
    except Exception as error:
        with pytest.raises(type(error)):
            reader()("Activity", copy.deepcopy(body))
        return
    got = reader()("Activity", copy.deepcopy(body))
    assert got == expected
    try:
        written = msrest_body(expected)
    except Exception as error:
        with pytest.raises(type(error)):
            wire_writer().body(copy.deepcopy(got), "Activity")
        return
    assert wire_writer().body(copy.deepcopy(got), "Activity") == written


def test_pooled_clients_write_bodies_with_the_wire_writer_and_the_adapter_reads_with_it() -> None:
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    from bot.adapter import ACTIVITY_DESERIALIZER
    from bot.connector import ConnectorPool

    client = ConnectorClient(MicrosoftAppCredentials("", ""), base_url="http://127.0.0.1:1")
    ConnectorPool()._adopt(client)
    serializer = client.conversations._serialize
    assert isinstance(serializer, WireSerializer)
    assert serializer.body(replies()[0], "Activity") == msrest_body(replies()[0])
    assert serializer._wire is not None and serializer._wire.fast == 1
    assert isinstance(ACTIVITY_DESERIALIZER, WireReader)


# --- timestamps: read_timestamp gives Deserializer.deserialize_iso's datetime, or leaves it to msrest ---

def _same_datetime(got: datetime, expected: datetime) -> None:
    assert got == expected
    assert (got.year, got.month, got.day, got.hour, got.minute, got.second, got.microsecond) == (
        expected.year, expected.month, expected.day, expected.hour, expected.minute, expected.second,
        expected.microsecond)
    assert type(got.tzinfo) is type(expected.tzinfo)
    assert got.utcoffset() == expected.utcoffset()
    assert got.tzname() == expected.tzname()
    assert got.isoformat() == expected.isoformat()


TIMESTAMPS = st.builds(
    lambda y, mo, d, h, mi, s, fraction, zone, t: (f"{y:04d}-{mo:02d}-{d:02d}{t}{h:02d}:{mi:02d}:{s:02d}"
                                                   f"{'.' + fraction if fraction is not None else ''}{zone}"),
    st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
    st.integers(0, 60), st.none() | st.text("0123456789", min_size=1, max_size=9),
    st.sampled_from(["Z", "z", "+00:00", "+01:00", "-05:30", "+14:00", "-12:00", "+23:59", ""]),
    st.sampled_from(["T", "t"]))


@settings(max_examples=400, deadline=None)
@given(TIMESTAMPS)
def test_a_teams_timestamp_reads_as_msrest_reads_it(text: str) -> None:
    from msrest.exceptions import DeserializationError

    from bot.wire import read_timestamp

    try:
        expected = Deserializer.deserialize_iso(text)
    except DeserializationError:
        assert read_timestamp(text) is None        # msrest's to refuse, with its own error
        return
    got = read_timestamp(text)
    if got is not None:                            # None: msrest reads it (not a form Teams sends)
        _same_datetime(got, expected)


def test_the_forms_teams_sends_take_the_fast_path() -> None:
    from bot.wire import read_timestamp

    for text in ("2026-01-05T09:00:00.1234567Z", "2026-01-05T09:00:00Z", "2026-03-29T01:30:00.12+01:00",
                 "2026-10-25T01:59:59.9999999-00:00"):
        got = read_timestamp(text)
        assert got is not None
        _same_datetime(got, Deserializer.deserialize_iso(text))
    for text in ("2026-01-05", "20260105T090000Z", "2026-01-05T09:00Z", 20260105, None, "2026-02-30T00:00:00Z"):
        assert read_timestamp(text) is None


def test_activity_timestamps_read_as_msrest_reads_them_and_msrest_still_gives_isodate_tzinfo() -> None:
    """If msrest stops giving isodate's tzinfo objects (or cutting fractions to microseconds), this fails."""
    import isodate

    body = {**teams_message("http://127.0.0.1:1", 3, 7, 1, "bench note"),
            "timestamp": "2026-01-05T09:00:00.1234567Z", "localTimestamp": "2026-01-05T10:00:00.1234567+01:00"}
    expected = Deserializer(MODELS)("Activity", copy.deepcopy(body))
    assert expected.timestamp.tzinfo is isodate.UTC and expected.timestamp.microsecond == 123456
    assert isinstance(expected.local_timestamp.tzinfo, isodate.FixedOffset)
    wire = reader()
    got = wire("Activity", copy.deepcopy(body))
    assert wire.fast == 1 and got == expected and got.serialize() == expected.serialize()
    _same_datetime(got.timestamp, expected.timestamp)
    _same_datetime(got.local_timestamp, expected.local_timestamp)
