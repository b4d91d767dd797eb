"""service/config.py: interpolation, validation with paths, defaults, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.config import (
    Config,
    ConfigError,
    EndpointConfig,
    ModelConfig,
    ProviderConfig,
    interpolate,
    load_config,
    parse_config,
)


def doc(**provider: Any) -> dict[str, Any]:
    """A valid document with one provider `p` (overridable fields) and one model."""
    return {
        "providers": {
            "p": {"kind": "openai", "base_url": "https://api.example.com/v1", **provider}
        },
        "models": [{"id": "openai/gpt-4o", "endpoints": [{"provider": "p", "model": "gpt-4o"}]}],
    }


def model_doc(**model: Any) -> dict[str, Any]:
    data = doc()
    data["models"][0].update(model)
    return data


# --- interpolation ----------------------------------------------------------------------


def test_interpolates_set_variables_and_defaults() -> None:
    data = doc(
        base_url="${BASE}",
        api_key="${KEY:-fallback-key}",
        headers={"X-Org": "org-${ORG}", "X-Empty": "${UNSET_EMPTY:-}"},
    )
    config = parse_config(data, env={"BASE": "https://proxy.internal/v1", "ORG": "acme"})
    provider = config.providers["p"]
    assert provider.base_url == "https://proxy.internal/v1"
    assert provider.api_key == "fallback-key"
    assert provider.headers == {"X-Org": "org-acme", "X-Empty": ""}


def test_a_set_variable_wins_over_its_default() -> None:
    config = parse_config(doc(api_key="${KEY:-fallback}"), env={"KEY": "sk-real"})
    assert config.providers["p"].api_key == "sk-real"


def test_a_variable_set_to_empty_wins_over_its_default() -> None:
    config = parse_config(doc(api_key="${KEY:-fallback}"), env={"KEY": ""})
    assert config.providers["p"].api_key == ""


def test_interpolation_is_not_recursive_and_cannot_change_structure() -> None:
    env = {"A": "${B}", "B": "nope", "Y": "key: [1, 2]\nother: x"}
    assert interpolate("x-${A}-y", env, "here") == "x-${B}-y"
    config = parse_config(doc(api_key="${Y}"), env=env)
    assert config.providers["p"].api_key == "key: [1, 2]\nother: x"


def test_interpolation_applies_inside_lists_of_models() -> None:
    data = doc()
    data["models"][0]["endpoints"][0]["model"] = "${UPSTREAM_MODEL}"
    config = parse_config(data, env={"UPSTREAM_MODEL": "gpt-4o-2024-08-06"})
    assert config.models[0].endpoints == (EndpointConfig("p", "gpt-4o-2024-08-06"),)


def test_missing_variable_names_the_path_and_the_variable() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc(api_key="${OPENAI_API_KEY}"), env={})
    message = str(exc.value)
    assert "config.providers.p.api_key" in message
    assert "OPENAI_API_KEY" in message


def test_missing_variable_in_a_list_names_the_index() -> None:
    data = doc()
    data["models"][0]["endpoints"][0]["model"] = "${NOPE}"
    with pytest.raises(ConfigError, match=r"config\.models\[0\]\.endpoints\[0\]\.model"):
        parse_config(data, env={})


def test_env_none_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_TEST_KEY", "from-os-environ")
    config = parse_config(doc(api_key="${SWITCHYARD_TEST_KEY}"))
    assert config.providers["p"].api_key == "from-os-environ"


def test_explicit_env_does_not_fall_back_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_TEST_KEY", "from-os-environ")
    with pytest.raises(ConfigError, match="SWITCHYARD_TEST_KEY"):
        parse_config(doc(api_key="${SWITCHYARD_TEST_KEY}"), env={})


# --- validation -------------------------------------------------------------------------


def test_unknown_provider_kind() -> None:
    with pytest.raises(ConfigError, match=r"config\.providers\.p\.kind: unknown provider kind"):
        parse_config(doc(kind="telepathy"), env={})


def test_endpoint_referencing_an_unknown_provider() -> None:
    data = doc()
    data["models"][0]["endpoints"] = [
        {"provider": "p", "model": "a"},
        {"provider": "q", "model": "b"},
    ]
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    assert "config.models[0].endpoints[1].provider" in str(exc.value)
    assert "'q'" in str(exc.value)


def test_duplicate_model_ids() -> None:
    data = doc()
    data["models"].append({"id": "openai/gpt-4o", "endpoints": [{"provider": "p", "model": "x"}]})
    with pytest.raises(ConfigError, match="duplicate model id 'openai/gpt-4o'"):
        parse_config(data, env={})


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (doc(timeout="x"), "config.providers.p.timeout: expected float, got str"),
        (doc(timeout=True), "config.providers.p.timeout: expected float, got bool"),
        (doc(connect_timeout=[1]), "config.providers.p.connect_timeout: expected float"),
        (doc(base_url=5), "config.providers.p.base_url: expected str, got int"),
        (doc(headers=["a"]), "config.providers.p.headers: expected dict, got list"),
        (model_doc(context_length="8k"), "config.models[0].context_length: expected int"),
        (model_doc(context_length=True), "config.models[0].context_length: expected int"),
        (model_doc(created=1.5), "config.models[0].created: expected int, got float"),
        (model_doc(capabilities="chat"), "config.models[0].capabilities: expected list"),
        (model_doc(id=7), "config.models[0].id: expected str, got int"),
        ({"providers": []}, "config.providers: expected dict, got list"),
        ({"models": {"a": 1}}, "config.models: expected list, got dict"),
    ],
)
def test_wrong_types_name_the_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    assert path in str(exc.value)


def test_capabilities_of_a_non_string_type_are_a_config_error() -> None:
    """A list item that is a mapping (a YAML slip) must fail with the path, not a TypeError."""
    with pytest.raises(ConfigError, match=r"config\.models\[0\]\.capabilities"):
        parse_config(model_doc(capabilities=[{"chat": True}]), env={})


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (doc(base_url=None), "config.providers.p.base_url: required"),
        (model_doc(endpoints=[]), "config.models[0].endpoints: at least one endpoint"),
        (model_doc(capabilities=[]), "config.models[0].capabilities"),
        (model_doc(capabilities=["chat", "vision"]), "config.models[0].capabilities"),
        (doc(timeout=0), "config.providers.p: timeouts must be positive"),
        (doc(connect_timeout=-1.0), "config.providers.p: timeouts must be positive"),
        (doc(answer_poll=-0.001), "config.providers.p.answer_poll: expected 0 to 0.005"),
        (doc(answer_poll=0.006), "config.providers.p.answer_poll: expected 0 to 0.005"),
        (doc(answer_poll=float("nan")), "config.providers.p.answer_poll: expected 0 to"),
        (doc(answer_poll="fast"), "config.providers.p.answer_poll: expected float"),
        ({"providers": {"p": "openai"}}, "config.providers.p: expected a mapping"),
        (model_doc(endpoints=["p/gpt-4o"]), "config.models[0].endpoints[0]: expected a mapping"),
    ],
)
def test_invalid_values_name_the_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    assert path in str(exc.value)


def test_a_top_level_list_is_refused() -> None:
    with pytest.raises(ConfigError, match="top level"):
        parse_config([{"providers": {}}], env={})


# --- defaults and normalisation ---------------------------------------------------------


def test_defaults() -> None:
    data = doc(base_url="https://api.example.com/v1///")
    config = parse_config(data, env={})
    assert config.providers == {
        "p": ProviderConfig(
            name="p",
            kind="openai",
            base_url="https://api.example.com/v1",
            api_key="",
            timeout=300.0,
            connect_timeout=10.0,
            headers={},
        )
    }
    assert config.models == (
        ModelConfig(
            id="openai/gpt-4o",
            name="openai/gpt-4o",
            capabilities=frozenset({"chat"}),
            endpoints=(EndpointConfig(provider="p", model="gpt-4o"),),
            owned_by="openai",
            context_length=None,
            created=0,
        ),
    )


def test_owned_by_is_the_whole_id_without_a_slash_and_can_be_overridden() -> None:
    data = doc()
    data["models"] = [
        {"id": "local-model", "endpoints": [{"provider": "p", "model": "x"}]},
        {"id": "meta/llama", "owned_by": "groq", "endpoints": [{"provider": "p", "model": "y"}]},
        {"id": "a/b/c", "endpoints": [{"provider": "p", "model": "z"}]},
    ]
    config = parse_config(data, env={})
    assert [m.owned_by for m in config.models] == ["local-model", "groq", "a"]


def test_explicit_values_and_int_timeouts_become_floats() -> None:
    data = doc(timeout=20, connect_timeout=2, api_key="k", headers={"X-Num": 5})
    data["models"][0].update(
        name="GPT-4o",
        capabilities=["chat", "embeddings"],
        context_length=128000,
        created=1715367049,
    )
    config = parse_config(data, env={})
    provider = config.providers["p"]
    assert provider.answer_poll == 0.0005  # the default, not a provider option
    assert provider.options == {}
    assert provider.timeout == 20.0
    assert isinstance(provider.timeout, float)
    assert provider.connect_timeout == 2.0
    assert provider.headers == {"X-Num": "5"}
    model = config.model("openai/gpt-4o")
    assert model is not None
    assert model.name == "GPT-4o"
    assert model.capabilities == frozenset({"chat", "embeddings"})
    assert model.context_length == 128000
    assert model.created == 1715367049
    assert config.model("openai/nope") is None


@pytest.mark.parametrize("value", [0, 0.002, 0.005])
def test_answer_poll_is_set_per_provider_and_zero_turns_it_off(value: float) -> None:
    provider = parse_config(doc(answer_poll=value), env={}).providers["p"]
    assert provider.answer_poll == value
    assert isinstance(provider.answer_poll, float)
    assert "answer_poll" not in provider.options


def test_null_sections_count_as_absent() -> None:
    config = parse_config({"providers": None, "models": None}, env={})
    assert config == Config(providers={}, models=())


# --- loading ----------------------------------------------------------------------------


def test_load_config_none_is_the_built_in_local_catalog() -> None:
    config = load_config(None, env={})
    assert {name: p.kind for name, p in config.providers.items()} == {"local": "local"}
    assert [(m.id, sorted(m.capabilities)) for m in config.models] == [
        ("local/all-minilm-l6-v2", ["embeddings", "rerank"]),
        ("local/smollm2-135m-instruct", ["chat"]),
    ]
    assert all(e.provider == "local" for m in config.models for e in m.endpoints)


def test_load_config_reads_yaml_and_interpolates(tmp_path: Path) -> None:
    path = tmp_path / "switchyard.yaml"
    path.write_text(
        """
providers:
  groq:
    kind: openai
    base_url: https://api.groq.com/openai/v1/
    api_key: ${GROQ_API_KEY}
    timeout: 60
models:
  - id: meta-llama/llama-3.3-70b
    capabilities: [chat]
    endpoints:
      - {provider: groq, model: llama-3.3-70b-versatile}
""",
        encoding="utf-8",
    )
    config = load_config(path, env={"GROQ_API_KEY": "gsk-test"})
    assert config.providers["groq"].base_url == "https://api.groq.com/openai/v1"
    assert config.providers["groq"].api_key == "gsk-test"
    assert config.providers["groq"].timeout == 60.0
    assert config.models[0].owned_by == "meta-llama"
    assert config.models[0].endpoints == (EndpointConfig("groq", "llama-3.3-70b-versatile"),)


def test_load_config_of_an_empty_file_is_an_empty_catalog(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_config(path, env={}) == Config(providers={}, models=())


def test_load_config_with_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  p: {kind: openai\n  base_url: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert str(path) in str(exc.value)
    assert "invalid YAML" in str(exc.value)


def test_load_config_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(path, env={})


def test_the_example_config_loads_and_builds() -> None:
    """switchyard.example.yaml is documentation users copy: it must stay valid."""
    from service.server import build_providers

    example = Path(__file__).parents[2] / "switchyard.example.yaml"
    env = {
        name: "x"
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY")
    }
    config = load_config(example, env=env)
    assert {p.kind for p in config.providers.values()} >= {"local", "openai", "anthropic"}
    assert set(build_providers(config)) == set(config.providers)
    assert config.moderation is not None and config.routing.retry.retries == 2


def test_the_example_config_keeps_the_built_in_models() -> None:
    """The README's quickstart uses both built-in models: copying the example to
    switchyard.yaml must not take them away (issue 16, item 24)."""
    example = Path(__file__).parents[2] / "switchyard.example.yaml"
    config = load_config(
        example,
        env=dict.fromkeys(
            ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "COHERE_API_KEY"), "x"
        ),
    )
    for model_id in ("local/smollm2-135m-instruct", "local/all-minilm-l6-v2"):
        model = config.model(model_id)
        assert model is not None, f"{model_id} is missing from the example"
        assert model == load_config(None, env={}).model(model_id), "as served by default"


# --- unknown keys and kinds (issue 16, item 23) -----------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(model=d.pop("models")),
            "config.model: unknown key (did you mean 'models'?)",
        ),
        (
            lambda d: d["providers"]["p"].update(api_kye="sk"),
            "config.providers.p.api_kye: unknown key (did you mean 'api_key'?)",
        ),
        (
            lambda d: d.update(routing={"retires": 5}),
            "config.routing.retires: unknown key (did you mean 'retries'?)",
        ),
        (
            lambda d: d.update(routing={"breaker": {"cooldwn": 5}}),
            "config.routing.breaker.cooldwn: unknown key (did you mean 'cooldown'?)",
        ),
        (
            lambda d: d["models"][0].update(context_lenght=8192),
            "config.models[0].context_lenght: unknown key (did you mean 'context_length'?)",
        ),
        (
            lambda d: d["models"][0]["endpoints"][0].update(modle="x"),
            "config.models[0].endpoints[0].modle: unknown key (did you mean 'model'?)",
        ),
        (
            lambda d: d["models"][0]["endpoints"][0].update(pricing={"promt": 1}),
            "config.models[0].endpoints[0].pricing.promt: unknown key (did you mean 'prompt'?)",
        ),
        (
            lambda d: d.update(moderation={"kind": "rules", "categorie": {}}),
            "config.moderation.categorie: unknown key (did you mean 'categories'?)",
        ),
        (lambda d: d.update(zzz=1), "config.zzz: unknown key"),
    ],
)
def test_an_unknown_key_names_its_path_and_the_nearest_key(change: Any, message: str) -> None:
    data = doc()
    change(data)
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    assert str(exc.value) == message


def test_an_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc(kind="anthropc"), env={})
    assert str(exc.value) == (
        "config.providers.p.kind: unknown provider kind 'anthropc' (did you mean 'anthropic'?); "
        "the kinds are anthropic, cohere, gemini, jina, local, openai, tei"
    )


@pytest.mark.parametrize("kind", ["cohere", "tei"])
def test_batch_size_is_an_option_of_the_kinds_that_batch(kind: str) -> None:
    config = parse_config(doc(kind=kind, batch_size=16), env={})
    assert config.providers["p"].options == {"batch_size": 16}


def test_an_option_of_another_kind_says_which_kinds_have_it() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc(kind="openai", batch_size=16), env={})
    assert str(exc.value) == (
        "config.providers.p.batch_size: not an option of kind 'openai' (only of 'cohere', 'tei')"
    )
    with pytest.raises(ConfigError, match=r"default_max_tokens: not an option of kind 'gemini'"):
        parse_config(doc(kind="gemini", default_max_tokens=100), env={})


def test_every_missing_variable_is_reported_at_once() -> None:
    data = doc(api_key="${OPENAI_KEY}", headers={"X-Org": "${ORG_ID}"})
    data["models"][0]["endpoints"][0]["model"] = "${UPSTREAM}-${OPENAI_KEY}"
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    message = str(exc.value)
    assert message.startswith("3 environment variables are not set: OPENAI_KEY, ORG_ID, UPSTREAM (")
    for where in (
        "config.providers.p.api_key: OPENAI_KEY",
        "config.providers.p.headers.X-Org: ORG_ID",
        "config.models[0].endpoints[0].model: UPSTREAM",
    ):
        assert where in message


def test_storage_defaults_to_embedded_and_redis_url_comes_from_the_environment() -> None:
    assert parse_config({}, env={}).storage.redis_url is None
    config = parse_config(
        {"storage": {"redis_url": "redis://a:6379/0", "on_backend_error": "open"}},
        env={"SWITCHYARD_REDIS_URL": "redis://b:6379/1"},
    )
    assert config.storage.redis_url == "redis://b:6379/1"  # the environment wins
    assert config.storage.on_backend_error == "open"


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"redis_ulr": "redis://a"}, "config.storage.redis_ulr: unknown key (did you mean"),
        ({"redis_url": "http://a"}, "config.storage.redis_url: expected redis://"),
        ({"on_backend_error": "maybe"}, "config.storage.on_backend_error: expected"),
        ({"lease_ttl": 0}, "config.storage.lease_ttl: must be at least 1"),
        ({"database_url": "mysql://a"}, "config.storage.database_url: expected a postgresql"),
        # PostgreSQL alone would leave each replica counting a key's limits on its own.
        ({"database_url": "postgresql://a/b"}, "config.storage.database_url: replicas sharing"),
    ],
)
def test_storage_mistakes_name_the_path(storage: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config({"storage": storage}, env={})
