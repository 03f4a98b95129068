"""Loading configuration files: every problem reported with ``file:line path: message``."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from erpbridge.config import ConfigFile, LoadedConfig, load_config
from erpbridge.config.models import IntervalTrigger, ScheduleTrigger
from erpbridge.errors import ConfigError, ConfigProblem
from erpbridge.systems import system_types
from erpbridge.transports.files.folder import (
    FolderChannelOptions,
    FolderStreamOptions,
    FolderTransport,
)

CHANNEL = """\
channels:
  shop:
    system: folder
    options:
      path: inbox
"""


def write(tmp_path: Path, text: str, name: str = "erpbridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={} if env is None else env)
    found = [str(p) for p in info.value.problems]
    assert found, "a ConfigError must carry at least one problem"
    assert str(info.value) == "\n".join(found)
    return found


def flow(body: str = "", name: str = "customers_in", entity: str = "customer") -> str:
    text = f"""\
  - name: {name}
    channel: shop
    entity: {entity}
    direction: in
"""
    return text + textwrap.indent(textwrap.dedent(body), "    ")


class TestValidConfiguration:
    def test_a_full_configuration_loads(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            version: 1
            hub:
              database_url: "sqlite:///data/hub.db"
            currency_rates:
              base: EUR
              rates: {USD: 1.10, CHF: 0.95}
            entities:
              vehicle:
                key: [vin]
                fields:
                  vin: {type: string, required: true}
                  price: {type: decimal}
            channels:
              shop:
                system: folder
                description: "ERP export folder"
                options: {path: inbox, max_file_mb: 5, min_age_seconds: 2}
            flows:
              - name: customers_in
                channel: shop
                entity: customer
                direction: in
                trigger: {schedule: "*/15 * * * *"}
                source: {pattern: "customers_*.csv", delimiter: ";"}
                key: KdNr
                batch_size: 500
                mapping:
                  code: KdNr
                  name: {template: "{Name1} {Name2}", required: true}
                  credit_limit: {from: Limit, transforms: [{decimal: ","}]}
                  locked: {from: Sperre, map: {J: true, N: false, 1: true, 0: false}}
                  addresses:
                    each: Adressen
                    fields: {city: Ort, country: {from: Land, transforms: [upper]}}
              - name: vehicles_in
                channel: shop
                entity: vehicle
                direction: in
                trigger: {interval: 15m}
                enabled: false
                mapping:
                  vin: VIN
                  price: {from: Preis, currency: {from_path: Waehrung, to: EUR}, round: 2}
              - name: products_in
                channel: shop
                entity: product
                direction: in
                trigger: initial
            """,
        )
        config = load_config(path, env={})
        assert isinstance(config, LoadedConfig)
        assert config.path == path.resolve()
        assert config.base_dir == tmp_path.resolve()
        assert [f.name for f in config.model.flows] == [
            "customers_in",
            "vehicles_in",
            "products_in",
        ]
        assert isinstance(config.model.flows[0].trigger, ScheduleTrigger)
        assert isinstance(config.model.flows[1].trigger, IntervalTrigger)
        assert config.model.flows[2].trigger == "initial"
        assert config.model.currency_rates.rates == {"USD": Decimal("1.10"), "CHF": Decimal("0.95")}
        assert "vehicle" in config.entities and "customer" in config.entities
        assert set(config.mappings) == {"customers_in", "vehicles_in", "products_in"}
        assert config.transports == {"shop": FolderTransport}
        assert config.channel_options["shop"] == FolderChannelOptions(
            path="inbox", max_file_mb=5, min_age_seconds=2
        )
        assert config.streams["customers_in"] == FolderStreamOptions(
            pattern="customers_*.csv", delimiter=";"
        )
        assert config.flow("vehicles_in").entity == "vehicle"
        with pytest.raises(KeyError, match="no flow named 'x'"):
            config.flow("x")
        assert config.database_url(env={}) == f"sqlite:///{tmp_path.resolve() / 'data/hub.db'}"
        assert config.database_url(env={"ERPBRIDGE_DATABASE_URL": "sqlite:///:memory:"}) == (
            "sqlite:///:memory:"
        )

        customers = config.mappings["customers_in"]
        payload = customers(
            {
                "KdNr": "10001",
                "Name1": "Acme",
                "Name2": "AG",
                "Limit": "1.500,00",
                "Sperre": "1",
                "Adressen": {"Ort": "Berlin", "Land": "de"},
            }
        )
        assert payload == {
            "code": "10001",
            "name": "Acme AG",
            "credit_limit": "1500",
            "locked": True,
            "addresses": [{"type": "other", "city": "Berlin", "country": "DE"}],
        }
        assert customers.required_fields == frozenset({"KdNr", "Name1", "Name2", "Limit", "Sperre"})
        vehicles = config.mappings["vehicles_in"]
        assert vehicles({"VIN": "V1", "Preis": "11", "Waehrung": "USD"}) == {
            "vin": "V1",
            "price": "10",
        }

    def test_an_empty_file_is_an_empty_configuration(self, tmp_path: Path) -> None:
        config = load_config(write(tmp_path, "# nothing yet\n"), env={})
        assert config.model == ConfigFile()
        assert config.database_url(env={}) == f"sqlite:///{tmp_path.resolve() / 'erpbridge.db'}"

    def test_relative_paths_are_relative_to_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "conf").mkdir()
        path = write(tmp_path / "conf", CHANNEL)
        config = load_config(path, env={})
        assert config.base_dir == (tmp_path / "conf").resolve()


class TestYaml:
    def test_malformed_yaml_names_the_line(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            channels:
              shop:
                system: folder
                options: {path: inbox
            flows: []
            """,
        )
        [problem] = problems(path)
        assert problem.startswith("erpbridge.yaml:5: malformed YAML: ")

    def test_bad_indentation(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  shop:\n    system: folder\n   options: {}\n")
        [problem] = problems(path)
        assert problem.startswith("erpbridge.yaml:4: malformed YAML:")

    def test_the_file_must_be_a_mapping(self, tmp_path: Path) -> None:
        assert problems(write(tmp_path, "- a\n- b\n")) == [
            "erpbridge.yaml:1: the file must be a mapping (channels:, flows:, …)"
        ]

    def test_unreadable_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope" / "erpbridge.yaml"
        with pytest.raises(ConfigError) as info:
            load_config(missing, env={})
        assert info.value.problems == [
            ConfigProblem(str(missing), None, "", "cannot read the file: No such file or directory")
        ]
        assert str(info.value) == f"{missing}: cannot read the file: No such file or directory"

    def test_a_folder_is_not_a_file(self, tmp_path: Path) -> None:
        [problem] = problems(tmp_path)
        assert problem.startswith(f"{tmp_path}: cannot read the file:")

    def test_bytes_that_are_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "erpbridge.yaml"
        path.write_bytes(b"channels: {}\n# caf\xe9\n")
        [problem] = problems(path)
        assert problem.startswith(f"{path}: cannot read the file:")


class TestChannels:
    def test_unknown_system_type(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  erp:\n    system: mainframe\n")
        [problem] = problems(path)
        assert problem.startswith(
            "erpbridge.yaml:3 channels.erp.system: unknown system type 'mainframe'"
            " (known: archive, folder"
        )

    def test_unknown_transport(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, "channels:\n  erp:\n    system: folder\n    transport: carrier-pigeon\n"
        )
        [problem] = problems(path)
        assert problem.startswith(
            "erpbridge.yaml:4 channels.erp.transport: unknown transport 'carrier-pigeon' (known: "
        )

    def test_invalid_channel_options(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            channels:
              shop:
                system: folder
                options:
                  path: inbox
                  max_file_mb: -1
                  archive: ../outside
            """,
        )
        assert problems(path) == [
            "erpbridge.yaml:7 channels.shop.options.archive: "
            "must be a subfolder of path (relative, without '..')",
            "erpbridge.yaml:6 channels.shop.options.max_file_mb: Input should be greater than 0",
        ]

    def test_missing_channel_option(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  shop:\n    system: folder\n")
        assert problems(path) == [
            "erpbridge.yaml:2 channels.shop.options.path: required setting is missing"
        ]

    def test_unknown_option(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "      colour: blue\n")
        assert problems(path) == ["erpbridge.yaml:6 channels.shop.options.colour: unknown setting"]

    def test_options_of_the_wrong_shape(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  shop:\n    system: folder\n    options: inbox\n")
        assert problems(path) == [
            "erpbridge.yaml:4 channels.shop.options: Input should be a valid dictionary"
        ]

    def test_credentials_of_the_wrong_shape(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "    credentials: [hunter2]\n")
        assert problems(path) == [
            "erpbridge.yaml:6 channels.shop.credentials: Input should be a valid dictionary"
        ]

    def test_channel_names_keep_their_case(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  MDS:\n    system: 5\n")
        assert problems(path) == [
            "erpbridge.yaml:3 channels.MDS.system: Input should be a valid string"
        ]

    def test_bad_channel_name(self, tmp_path: Path) -> None:
        path = write(tmp_path, "channels:\n  'my shop':\n    system: folder\n")
        [problem] = problems(path)
        assert "'my shop' is not a valid name" in problem


class TestSecrets:
    def test_literal_credentials_are_refused(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + "    credentials:\n"
            + "      password: hunter2\n"
            + '      token: "${SHOP_TOKEN}"\n'
            + '      mixed: "pre-${SHOP_TOKEN}"\n',
        )
        assert problems(path, env={"SHOP_TOKEN": "t0k"}) == [
            "erpbridge.yaml:7 channels.shop.credentials.password: "
            "write secrets as ${ENV_VAR} references (or `stored`), never as literal values",
            "erpbridge.yaml:9 channels.shop.credentials.mixed: "
            "write secrets as ${ENV_VAR} references (or `stored`), never as literal values",
        ]

    def test_credentials_from_the_environment(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + '    credentials:\n      token: "${SHOP_TOKEN}"\n      user: "${U:-reader}"\n',
        )
        channel = load_config(path, env={"SHOP_TOKEN": "t0k"}).model.channels["shop"]
        assert channel.credentials["token"].get_secret_value() == "t0k"
        assert channel.credentials["user"].get_secret_value() == "reader"
        assert "t0k" not in repr(channel)

    def test_literal_password_in_a_url_is_refused(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            channels:
              shop:
                system: folder
                options:
                  path: "sftp://reader:s3cret@files.example/outbox"
            """,
        )
        assert problems(path) == [
            "erpbridge.yaml:5 channels.shop.options.path: "
            "the URL holds a literal password; write it as ${ENV_VAR}"
        ]

    def test_password_reference_in_a_url_is_fine(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            channels:
              shop:
                system: folder
                options:
                  path: "sftp://reader:${SFTP_PASSWORD}@files.example/outbox"
            """,
        )
        config = load_config(path, env={"SFTP_PASSWORD": "s3cret"})
        options = config.channel_options["shop"]
        assert isinstance(options, FolderChannelOptions)
        assert options.path == "sftp://reader:s3cret@files.example/outbox"

    def test_url_without_password_is_fine(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            'channels:\n  shop:\n    system: folder\n    options: {path: "sftp://reader@h/x"}\n',
        )
        assert (
            load_config(path, env={}).model.channels["shop"].options["path"] == "sftp://reader@h/x"
        )

    def test_literal_password_in_the_hub_database_url(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'hub:\n  database_url: "postgresql+psycopg://hub:pw@db/hub"\n')
        assert problems(path) == [
            "erpbridge.yaml:2 hub.database_url: "
            "the URL holds a literal password; write it as ${ENV_VAR}"
        ]
        path = write(
            tmp_path, 'hub:\n  database_url: "postgresql+psycopg://hub:${HUB_PW}@db/hub"\n'
        )
        config = load_config(path, env={"HUB_PW": "pw"})
        assert config.database_url(env={}) == "postgresql+psycopg://hub:pw@db/hub"


class TestEnvironment:
    def test_missing_variable_names_it_and_the_path(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            'channels:\n  shop:\n    system: folder\n    options: {path: "${INBOX}/erp"}\n',
        )
        assert problems(path) == [
            "erpbridge.yaml:4 channels.shop.options.path: environment variable INBOX is not set"
        ]

    def test_variables_are_expanded(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            'channels:\n  shop:\n    system: folder\n    options: {path: "${INBOX}/erp"}\n',
        )
        assert load_config(path, env={"INBOX": "/data"}).model.channels["shop"].options == {
            "path": "/data/erp"
        }

    def test_default_value(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "channels:\n  shop:\n    system: folder\n"
            '    options: {path: "${INBOX:-inbox}", max_file_mb: "${MAX_MB:-}"}\n',
        )
        assert problems(path) == [
            "erpbridge.yaml:4 channels.shop.options.max_file_mb: "
            "Input should be a valid number, unable to parse string as a number"
        ]
        options = load_config(path, env={"MAX_MB": "7"}).channel_options["shop"]
        assert options == FolderChannelOptions(path="inbox", max_file_mb=7)
        options = load_config(path, env={"MAX_MB": "7", "INBOX": "/srv/in"}).channel_options["shop"]
        assert options == FolderChannelOptions(path="/srv/in", max_file_mb=7)

    def test_escaped_reference_is_literal(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + flow(
                """\
                mapping:
                  code: KdNr
                  name: {value: "$${NOT_A_VARIABLE} and ${NAME:-x}"}
                """
            ).replace("  - name", "flows:\n  - name", 1),
        )
        config = load_config(path, env={})
        assert config.mappings["customers_in"]({"KdNr": "1"})["name"] == "${NOT_A_VARIABLE} and x"

    def test_variables_in_lists_and_nested_blocks(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + "flows:\n"
            + flow(
                """\
                mapping:
                  code: {from: KdNr, transforms: [{prefix: "${PREFIX}"}]}
                  name: {from: Name, transforms: [{suffix: "${SUFFIX}"}]}
                """
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'PREFIX')} flows[0].mapping.code.transforms[0].prefix: "
            "environment variable PREFIX is not set",
            f"erpbridge.yaml:{line_of(path, 'SUFFIX')} flows[0].mapping.name.transforms[0].suffix: "
            "environment variable SUFFIX is not set",
        ]


class TestFlows:
    def test_unknown_transform_names_the_line_of_the_entry(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            textwrap.dedent(
                """\
                entities:
                  offer:
                    key: [sku]
                    fields:
                      sku: {required: true}
                      price: {type: decimal}
                """
            )
            + CHANNEL
            + "flows:\n"
            + flow(
                """\
                mapping:
                  sku: Artikel
                  price:
                    from: Preis
                    transforms:
                      - trim
                      - cents
                """,
                name="offers_in",
                entity="offer",
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, '- cents')} flows[0].mapping.price.transforms[1]: "
            "unknown transform 'cents'"
        ]

    def test_problems_in_nested_fields_point_into_the_file(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + "flows:\n"
            + flow(
                """\
                mapping:
                  code: KdNr
                  name: Name
                  addresses:
                    each: Adressen
                    fields:
                      city: Ort
                      country: {from: Land, transforms: [upper, shout]}
                      planet: Planet
                  email_preferences:
                    fields:
                      newsletter: {from: NL, transforms: [{boolean: J}]}
                """
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'shout')} "
            "flows[0].mapping.addresses.fields.country.transforms[1]: unknown transform 'shout'",
            f"erpbridge.yaml:{line_of(path, 'planet:')} flows[0].mapping.addresses.fields.planet: "
            "'planet' is not a field of the entity (fields: type, name, street, street2, "
            "postal_code, city, region, country)",
            f"erpbridge.yaml:{line_of(path, 'newsletter:')} "
            "flows[0].mapping.email_preferences.fields.newsletter.transforms[0]: "
            "transform 'boolean': the argument is the list of values meaning true",
        ]

    def test_unknown_unit_and_missing_rate(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "currency_rates: {rates: {USD: 1.1}}\n"
            + CHANNEL
            + "flows:\n"
            + flow(
                """\
                mapping:
                  sku: s
                  name: n
                  weight:
                    from: w
                    unit: {from: stone, to: kg}
                """,
                entity="product",
            )
            + flow(
                """\
                mapping:
                  sku: s
                  currency: {value: EUR}
                  amount:
                    from: p
                    currency:
                      from_path: cur
                      to: GBP
                """,
                name="prices_in",
                entity="price",
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'unit:')} flows[0].mapping.weight.unit: "
            "unknown unit 'stone'",
            f"erpbridge.yaml:{line_of(path, 'currency:', 2)} flows[1].mapping.amount.currency: "
            "no exchange rate for 'GBP' in currency_rates",
        ]

    def test_unknown_entity(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n" + flow(entity="vehicle"))
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'entity:')} flows[0].entity: unknown entity 'vehicle' "
            "(entities: customer, product, price, inventory, allocation, order, invoice, rma, "
            "payment_token, production_order, booking)"
        ]

    def test_unknown_channel(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, CHANNEL + "flows:\n" + flow().replace("channel: shop", "channel: erp")
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'channel: erp')} flows[0].channel: "
            "unknown channel 'erp' (channels: shop)"
        ]

    def test_duplicate_flow_names(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, CHANNEL + "flows:\n" + flow() + flow(entity="product") + flow(entity="order")
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'name: customers_in', 2)} flows[1].name: "
            "duplicate flow name 'customers_in'",
            f"erpbridge.yaml:{line_of(path, 'name: customers_in', 3)} flows[2].name: "
            "duplicate flow name 'customers_in'",
        ]

    def test_invalid_cron_expression(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n" + flow('trigger: {schedule: "61 * * * *"}\n'))
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'schedule')} flows[0].trigger.schedule: "
            "invalid cron expression '61 * * * *'"
        ]

    def test_invalid_interval(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n" + flow("trigger: {interval: 15x}\n"))
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'interval')} flows[0].trigger.interval: "
            "String should match pattern '^\\d+(s|m|h|d)$'"
        ]

    def test_unknown_trigger_word(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n" + flow("trigger: hourly\n"))
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'trigger')} flows[0].trigger: "
            "Input should be 'manual', 'initial' or 'immediate'"
        ]

    def test_cursor_on_a_folder_flow(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + "flows:\n"
            + flow()
            + flow(
                "cursor: {column: updated_at, tiebreaker: id}\n",
                name="products_in",
                entity="product",
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'cursor:')} flows[1].cursor: unknown setting"
        ]

    def test_unknown_source_option(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, CHANNEL + "flows:\n" + flow("source: {pattern: '*.csv', sheet: 2}\n")
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'source:')} flows[0].source.sheet: unknown setting"
        ]

    def test_invalid_source_option(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n" + flow("source:\n  pattern: 'sub/*.csv'\n"))
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'pattern:')} flows[0].source.pattern: "
            "pattern matches file names in the folder; subfolders are not read"
        ]

    def test_mapping_entries_of_the_wrong_type(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            CHANNEL
            + "flows:\n"
            + flow(
                """\
                mapping:
                  code: {from: 5}
                  name: {from: Name, value: x}
                  email: {from: Mail, transforms: [7]}
                  phone: {from: Tel, tranforms: [trim]}
                """
            ),
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'code:')} flows[0].mapping.code.from: "
            "Input should be a valid string",
            f"erpbridge.yaml:{line_of(path, 'name: {')} flows[0].mapping.name: "
            "give only one of from, value",
            f"erpbridge.yaml:{line_of(path, 'email:')} flows[0].mapping.email.transforms[0]: "
            "Input should be a valid string",
            f"erpbridge.yaml:{line_of(path, 'phone:')} flows[0].mapping.phone.tranforms: "
            "unknown setting",
        ]

    def test_a_bare_no_is_a_source_path_not_a_boolean(self, tmp_path: Path) -> None:
        # YAML 1.2: No (or yes, off, ...) is a string; YAML 1.1 (PyYAML) read it as False.
        path = write(tmp_path, CHANNEL + "flows:\n" + flow("mapping: {code: No, name: Name}\n"))
        mapping = load_config(path, env={}).flow("customers_in").mapping
        assert mapping is not None and mapping["code"] == "No"

    def test_missing_flow_settings(self, tmp_path: Path) -> None:
        path = write(tmp_path, CHANNEL + "flows:\n  - name: f\n    channel: shop\n")
        assert problems(path) == [
            "erpbridge.yaml:7 flows[0].entity: required setting is missing",
            "erpbridge.yaml:7 flows[0].direction: required setting is missing",
        ]


class TestEntitiesAndTopLevel:
    def test_redefining_a_builtin_entity(self, tmp_path: Path) -> None:
        path = write(tmp_path, "entities:\n  customer:\n    key: [code]\n    fields: {code: {}}\n")
        assert problems(path) == [
            "erpbridge.yaml:2 entities.customer: "
            "'customer' is a built-in entity; choose another name"
        ]

    def test_invalid_entity_declaration(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            entities:
              vehicle:
                key: [vin]
                fields:
                  model: {type: string}
                  year: {type: integer, pattern: "[0-9"}
            """,
        )
        assert problems(path) == [
            "erpbridge.yaml:6 entities.vehicle.fields.year: invalid pattern '[0-9': "
            "unterminated character set at position 0",
        ]
        path = write(tmp_path, "entities:\n  vehicle:\n    key: [vin]\n    fields: {model: {}}\n")
        assert problems(path) == [
            "erpbridge.yaml:2 entities.vehicle: key field 'vin' is not among the fields"
        ]

    def test_unknown_settings(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            version: 1
            hub:
              database: x
            chanels: {}
            """,
        )
        assert problems(path) == [
            "erpbridge.yaml:3 hub.database: unknown setting",
            "erpbridge.yaml:4 chanels: unknown setting",
        ]

    def test_unsupported_version(self, tmp_path: Path) -> None:
        assert problems(write(tmp_path, "version: 2\n")) == [
            "erpbridge.yaml:1 version: Input should be 1"
        ]


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    known = ", ".join(sorted(system_types()))
    path = write(
        tmp_path,
        """\
        channels:
          shop:
            system: folder
            options:
              path: "${INBOX}"
          erp:
            system: mainframe
        flows:
          - name: customers_in
            channel: shop
            entity: customer
            direction: in
            trigger: {schedule: "every monday"}
            mapping:
              code: {from: KdNr, transforms: [cents]}
              name: Name
          - name: customers_in
            channel: nowhere
            entity: vehicle
            direction: in
        """,
    )
    assert problems(path) == [
        "erpbridge.yaml:5 channels.shop.options.path: environment variable INBOX is not set",
        f"erpbridge.yaml:7 channels.erp.system: unknown system type 'mainframe' (known: {known})",
        "erpbridge.yaml:13 flows[0].trigger.schedule: invalid cron expression 'every monday'",
        "erpbridge.yaml:15 flows[0].mapping.code.transforms[0]: unknown transform 'cents'",
        "erpbridge.yaml:17 flows[1].name: duplicate flow name 'customers_in'",
        "erpbridge.yaml:18 flows[1].channel: unknown channel 'nowhere' (channels: shop, erp)",
        "erpbridge.yaml:19 flows[1].entity: unknown entity 'vehicle' (entities: customer, "
        "product, price, inventory, allocation, order, invoice, rma, payment_token, "
        "production_order, booking)",
    ]


class TestLaterChecks:
    def test_shorthand_field_types_in_declared_entities(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "entities:\n  vehicle:\n    key: [vin]\n    fields: {vin: string, km: integer}\n",
        )
        fields = load_config(path, env={}).entities["vehicle"].fields
        assert (fields["vin"].type, fields["km"].type) == ("string", "integer")

    def test_a_default_that_does_not_fit_its_field(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "entities:\n  vehicle:\n    key: [vin]\n    fields:\n"
            "      vin: string\n      km: {type: integer, default: many}\n",
        )
        found = problems(path)
        assert len(found) == 1
        assert found[0].startswith("erpbridge.yaml:6 entities.vehicle.fields.km")
        assert "the default does not fit the field" in found[0]

    def test_exchange_rates_must_be_positive(self, tmp_path: Path) -> None:
        path = write(tmp_path, "currency_rates:\n  base: EUR\n  rates: {USD: 0}\n")
        assert problems(path) == [
            "erpbridge.yaml:3 currency_rates.rates.USD: Input should be greater than 0"
        ]


class TestIdentityProviders:
    def test_mappings_and_grants_are_checked(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            hub:
              api:
                identity_providers:
                  - issuer: https://login.example
                    jwks_url: https://login.example/keys
                    identities: {app-1: crm}
                  - issuer: https://login.example
                    jwks_url: https://login.example/keys
                    unmapped: {scopes: [read], channels: [shop, nowhere]}
            channels:
              shop: {system: platform}
            """,
        )
        assert problems(path) == [
            f"erpbridge.yaml:{line_of(path, 'issuer:', 2)} hub.api.identity_providers[1].issuer: "
            "issuer 'https://login.example' is listed twice",
            f"erpbridge.yaml:{line_of(path, 'unmapped:')} "
            "hub.api.identity_providers[1].unmapped.channels: no channel named 'nowhere'",
        ]

    def test_an_unmapped_grant_names_known_scopes(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """\
            hub:
              api:
                identity_providers:
                  - issuer: https://other.example
                    public_key_file: idp.pem
                    unmapped: {scopes: [root]}
            """,
        )
        [problem] = problems(path)
        assert "hub.api.identity_providers[0].unmapped.scopes[0]: Input should be 'read'" in problem
