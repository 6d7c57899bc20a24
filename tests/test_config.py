from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

GOOD_ID = "5f0e4c1a-7f53-4b8e-9a39-2b0c4d7e1f11"


def load(**env):
    return load_config(env, env_file=None)


def test_defaults_are_the_embedded_local_setup():
    config = load()
    assert config.port == 3978 and config.anonymous and config.storage_backend == "tinydb"
    assert config.data_dir == Path("data") and config.default_profile == "bolton"


@pytest.mark.parametrize("env,setting", [
    ({"PORT": "abc"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"MicrosoftAppType": "Sometimes"}, "MicrosoftAppType"),
    ({"MicrosoftAppId": "not-a-guid", "MicrosoftAppPassword": "x"}, "MicrosoftAppId"),
    ({"MicrosoftAppId": GOOD_ID}, "MicrosoftAppPassword"),
    ({"MicrosoftAppId": GOOD_ID, "MicrosoftAppPassword": "x", "MicrosoftAppType": "SingleTenant"}, "MicrosoftAppTenantId"),
    ({"MicrosoftAppPassword": "secret"}, "MicrosoftAppId"),
    ({"STORAGE_BACKEND": "floppy"}, "STORAGE_BACKEND"),
    ({"STORAGE_BACKEND": "blob"}, "AZURE_STORAGE_CONNECTION_STRING"),
    ({"DEFAULT_PROFILE": "atlantis"}, "DEFAULT_PROFILE"),
    ({"CLOSURE_DAYS": "2026-13-01"}, "CLOSURE_DAYS"),
    ({"COORDINATORS": "not@an@email"}, "COORDINATORS"),
    ({"GRAPH_CLIENT_ID": "abc"}, "GRAPH_TENANT_ID"),
    ({"BOT_LANGUAGE": "fr"}, "BOT_LANGUAGE"),
    ({"PROFILE_FILES": "/nonexistent/profile.toml"}, "PROFILE_FILES"),
])
def test_a_bad_value_names_the_setting(env, setting):
    with pytest.raises(ConfigError) as caught:
        load(**env)
    assert caught.value.setting == setting


def test_real_auth_settings_are_accepted():
    config = load(MicrosoftAppId=GOOD_ID, MicrosoftAppPassword="pw", MicrosoftAppType="SingleTenant",
                  MicrosoftAppTenantId="tenant")
    assert not config.anonymous and config.app_type == "SingleTenant"


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=4000\nDEFAULT_PROFILE=gwent\n")
    config = load_config({"PORT": "4001"}, env_file=env_file)
    assert config.port == 4001 and config.default_profile == "gwent"


def test_facilitator_roster_is_validated(tmp_path: Path):
    roster = tmp_path / "facilitators.toml"
    roster.write_text('[[facilitator]]\nname = "Fran Facilitator"\nemail = "fran@example.org"\nagency = "Police"\n')
    assert load(FACILITATORS_FILE=str(roster)).facilitators[0].agency == "Police"
    roster.write_text('[[facilitator]]\nname = "Fran"\nemail = "nope"\nagency = "Police"\n')
    with pytest.raises(ConfigError) as caught:
        load(FACILITATORS_FILE=str(roster))
    assert caught.value.setting == "FACILITATORS_FILE" and "facilitator[0].email" in caught.value.reason


def test_start_up_stops_with_a_message_naming_the_setting(monkeypatch, capsys):
    from bot.__main__ import main

    monkeypatch.setenv("PORT", "not-a-port")
    monkeypatch.chdir(Path(__file__).parent)
    assert main([]) == 2
    assert "PORT" in capsys.readouterr().err
