"""Loading projects: files, names, environment, profiles, merges, extends, include,
new keys, and the errors for bad input (paths, lines, cycles, unknown references).

Messages marked "compose v2" were checked against the real binary (2.40.3)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from berth.compose import ProjectOptions, config_services, config_volumes, load_project
from berth.compose.loader import normalize_project_name
from berth.compose.model import Dependency, Project
from berth.errors import InvalidParameter


def write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def load(directory: Path, files: dict[str, str] | None = None, **kwargs: object) -> Project:
    if files:
        write(directory, files)
    options = ProjectOptions(working_directory=str(directory), **kwargs)  # type: ignore[arg-type]
    return load_project(options)


def fails(directory: Path, files: dict[str, str], match: str, **kwargs: object) -> str:
    with pytest.raises(InvalidParameter, match=match) as e:
        load(directory, files, **kwargs)
    return str(e.value)


# --- files ---------------------------------------------------------------------------

def test_finds_compose_file_in_a_parent_with_its_override(tmp_path: Path) -> None:
    write(tmp_path, {
        "docker-compose.yml": "services: {a: {image: x}}\n",
        "docker-compose.override.yml": "services: {a: {image: y}}\n",
    })
    (tmp_path / "deep" / "er").mkdir(parents=True)
    project = load(tmp_path / "deep" / "er")
    assert project.services["a"].image == "y"
    assert project.working_dir == str(tmp_path)
    assert project.config_files == [str(tmp_path / "docker-compose.yml"),
                                    str(tmp_path / "docker-compose.override.yml")]


def test_no_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="no configuration file provided"):
        load(tmp_path)


def test_compose_file_variable_with_several_files(tmp_path: Path) -> None:
    write(tmp_path, {"one.yaml": "services: {a: {image: x}}\n",
                     "two.yaml": "services: {b: {image: y}}\n"})
    project = load(tmp_path, environment={"COMPOSE_FILE": "one.yaml:two.yaml"})
    assert list(project.services) == ["a", "b"]


def test_explicit_files_merge_in_order(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.yaml": """
            services:
              web:
                image: one
                command: [a, b]
                entrypoint: /bin/sh
                ports: ["80:80"]
                volumes: [./x:/data, /anon]
                environment: {A: "1"}
                ulimits: {nofile: {soft: 1, hard: 2}}
                healthcheck: {test: [CMD, a], interval: 10s}
                build: {context: ., args: {X: "1"}}
            """,
        "b.yaml": """
            services:
              web:
                image: two
                command: c
                ports: ["81:81"]
                volumes: [./y:/data]
                environment: [B=2]
                ulimits: {nofile: 5}
                healthcheck: {test: [CMD, b]}
                build: {dockerfile: Other, args: [Y=2]}
            """,
    })
    web = load(tmp_path, config_files=["a.yaml", "b.yaml"]).services["web"]
    assert web.image == "two"
    assert web.command == ["c"]
    assert web.entrypoint == ["/bin/sh"]
    assert [(p.published, p.target) for p in web.ports] == [("80", 80), ("81", 81)]
    assert [(v.source, v.target) for v in web.volumes] == [(str(tmp_path / "y"), "/data"), (None, "/anon")]
    assert web.environment == {"A": "1", "B": "2"}
    assert web.ulimits["nofile"].soft == 5 and web.ulimits["nofile"].single
    assert web.healthcheck is not None and web.healthcheck.test == ["CMD", "b"]
    assert web.healthcheck.interval == 10_000_000_000
    assert web.build is not None and web.build.dockerfile == "Other"
    assert web.build.args == {"X": "1", "Y": "2"}


def test_merge_logging_driver_change_replaces(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.yaml": "services: {w: {image: x, logging: {driver: json-file, options: {a: '1'}}}}\n",
        "b.yaml": "services: {w: {logging: {driver: syslog, options: {b: '2'}}}}\n",
    })
    w = load(tmp_path, config_files=["a.yaml", "b.yaml"]).services["w"]
    assert w.logging is not None and w.logging.driver == "syslog" and w.logging.options == {"b": "2"}


# --- names ---------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "name"), [("My.Proj", "myproj"), ("Some_Dir", "some_dir"),
                                          ("-x-Y", "x-y"), ("__a", "a"), ("a b-c", "ab-c")])
def test_normalize_project_name(raw: str, name: str) -> None:
    assert normalize_project_name(raw) == name


def test_project_name_precedence(tmp_path: Path) -> None:
    directory = tmp_path / "Dir.Name"
    write(directory, {"compose.yaml": "services: {a: {image: x}}\n"})
    assert load(directory).name == "dirname"
    write(directory, {"compose.yaml": "name: From-File\nservices: {a: {image: x}}\n"})
    assert load(directory).name == "from-file"
    write(directory, {".env": "COMPOSE_PROJECT_NAME=dotenv\n"})
    assert load(directory).name == "dotenv"
    assert load(directory, environment={"COMPOSE_PROJECT_NAME": "env"}).name == "env"
    assert load(directory, project_name="flag", environment={"COMPOSE_PROJECT_NAME": "env"}).name == "flag"


def test_invalid_project_name(tmp_path: Path) -> None:
    # compose v2
    fails(tmp_path, {"compose.yaml": "services: {a: {image: x}}\n"},
          r'^invalid project name "Bad\.Name": must consist only of lowercase alphanumeric '
          "characters, hyphens, and underscores as well as start with a letter or number$",
          project_name="Bad.Name")


def test_name_is_interpolated(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": "name: app-${ENV}\nservices: {a: {image: x}}\n"},
                   environment={"ENV": "prod"})
    assert project.name == "app-prod"


# --- environment -----------------------------------------------------------------------

def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    files = {
        "compose.yaml": "services: {a: {image: 'x:${TAG}', environment: [FROM_SHELL, FROM_DOT]}}\n",
        ".env": "TAG=dot\nFROM_DOT=d\nFROM_SHELL=file\n",
    }
    project = load(tmp_path, files, environment={"TAG": "shell", "FROM_SHELL": "s"})
    a = project.services["a"]
    assert a.image == "x:shell"
    assert a.environment == {"FROM_SHELL": "s", "FROM_DOT": "d"}
    assert project.environment["TAG"] == "shell"


def test_env_file_option_replaces_dotenv(tmp_path: Path) -> None:
    files = {"compose.yaml": "services: {a: {image: 'x:${TAG}'}}\n", ".env": "TAG=dot\n",
             "other.env": "TAG=other\n", "third.env": "TAG=${TAG}-third\n"}
    assert load(tmp_path, files, env_files=["other.env"]).services["a"].image == "x:other"
    assert load(tmp_path, env_files=["other.env", "third.env"]).services["a"].image == "x:other-third"


def test_unset_variable_warning_collected(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": "services: {a: {image: 'x${NOPE}'}}\n"})
    assert project.services["a"].image == "x"
    assert project.warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_required_variable_error(tmp_path: Path) -> None:
    # compose v2
    fails(tmp_path, {"compose.yaml": "services:\n  a:\n    image: ${X:?need x}\n"},
          r"^error while interpolating services\.a\.image: required variable X is missing a value: need x$")


def test_env_files_of_a_service(tmp_path: Path) -> None:
    files = {
        "compose.yaml": """
            services:
              a:
                image: x
                env_file: [one.env, {path: missing.env, required: false}, two.env]
                environment: {OVERRIDE: service}
            """,
        "one.env": "ONE=1\nOVERRIDE=file\nSHARED=one\n",
        "two.env": "SHARED=two\n",
    }
    a = load(tmp_path, files).services["a"]
    assert a.environment == {"ONE": "1", "OVERRIDE": "service", "SHARED": "two"}
    (tmp_path / "two.env").unlink()
    fails(tmp_path, {}, r"^env file .*two\.env not found")


# --- profiles ----------------------------------------------------------------------------

PROFILED = {"compose.yaml": """
    services:
      base: {image: x}
      dbg: {image: x, profiles: [debug]}
      tool: {image: x, profiles: [tools, debug], depends_on: [base]}
    """}


def test_profiles(tmp_path: Path) -> None:
    assert list(load(tmp_path, PROFILED).services) == ["base"]
    assert list(load(tmp_path, profiles=["tools"]).services) == ["base", "tool"]
    assert list(load(tmp_path, profiles=["debug"]).services) == ["base", "dbg", "tool"]
    assert list(load(tmp_path, profiles=["*"]).services) == ["base", "dbg", "tool"]
    assert list(load(tmp_path, environment={"COMPOSE_PROFILES": "tools, x"}).services) == ["base", "tool"]
    assert list(load(tmp_path).disabled_services) == ["dbg", "tool"]


def test_dependency_on_a_disabled_service(tmp_path: Path) -> None:
    files = {"compose.yaml": """
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, profiles: [p]}
        """}
    # compose v2
    fails(tmp_path, files, r'^service "a" depends on undefined service "b": invalid compose project$')
    assert list(load(tmp_path, profiles=["p"]).services) == ["a", "b"]
    write(tmp_path, {"compose.yaml": """
        services:
          a: {image: x, depends_on: {b: {condition: service_started, required: false}}}
          b: {image: x, profiles: [p]}
        """})
    a = load(tmp_path).services["a"]
    assert a.depends_on == {"b": Dependency(required=False)}


# --- extends and include ------------------------------------------------------------------

def test_extends_same_file_chain(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": """
        services:
          base: {image: x, environment: {A: "1"}, ports: ["80"]}
          mid: {extends: base, environment: {B: "2"}}
          top: {extends: {service: mid}, environment: {A: "3"}, ports: ["81"]}
        """})
    top = project.services["top"]
    assert top.image == "x"
    assert top.environment == {"A": "3", "B": "2"}
    assert [p.target for p in top.ports] == [80, 81]


def test_extends_cycle_and_missing(tmp_path: Path) -> None:
    fails(tmp_path, {"compose.yaml": "services:\n  a: {extends: b, image: x}\n  b: {extends: a}\n"},
          "circular reference with extends")
    fails(tmp_path, {"compose.yaml": "services:\n  a: {extends: nope, image: x}\n"},
          "cannot extend service 'nope'")
    fails(tmp_path, {"compose.yaml": "services:\n  a: {extends: {service: s, file: other.yaml}}\n"},
          r"open .*other\.yaml: no such file or directory")


def test_extends_other_file_resolves_its_paths(tmp_path: Path) -> None:
    project = load(tmp_path, {
        "compose.yaml": "services:\n  a: {extends: {file: lib/base.yaml, service: s}}\n",
        "lib/base.yaml": "services:\n  s: {build: ./ctx, volumes: ['./d:/d'], env_file: e.env}\n",
        "lib/e.env": "E=1\n",
    })
    a = project.services["a"]
    assert a.build is not None and a.build.context == str(tmp_path / "lib" / "ctx")
    assert a.volumes[0].source == str(tmp_path / "lib" / "d")
    assert a.environment == {"E": "1"}


def test_include(tmp_path: Path) -> None:
    files = {
        "compose.yaml": """
            include:
              - path: inc/compose.yaml
                env_file: inc/custom.env
            services:
              web: {image: x, depends_on: [db], volumes: [data:/d]}
            """,
        "inc/compose.yaml": """
            services:
              db: {image: 'db:${V}', volumes: ['./init:/init', 'data:/var/db']}
            volumes:
              data: {}
            """,
        "inc/custom.env": "V=9\n",
    }
    project = load(tmp_path, files)
    assert project.services["db"].image == "db:9"
    assert project.services["db"].volumes[0].source == str(tmp_path / "inc" / "init")
    assert list(project.volumes) == ["data"]
    assert project.volumes["data"].name == f"{normalize_project_name(tmp_path.name)}_data"
    write(tmp_path, {"compose.yaml": "include: [inc/compose.yaml]\nservices:\n  db: {image: y}\n"})
    fails(tmp_path, {}, r"^services\.db conflicts with imported resource$")


def test_include_loop_is_stopped(tmp_path: Path) -> None:
    fails(tmp_path, {"compose.yaml": "include: [compose.yaml]\nservices: {a: {image: x}}\n"},
          "included too deeply")


# --- validation and bad input ------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    # compose v2, all of them
    ("services:\n  a:\n    image: x\n    foo: 1\n", "services.a additional properties 'foo' not allowed"),
    ("foo: 1\nservices:\n  a: {image: x}\n", " additional properties 'foo' not allowed"),
    ("services:\n  a:\n    image: x\n    ports: \"80\"\n", "services.a.ports must be a array"),
    ("services:\n  a:\n    image: x\n    restart: 5\n", "services.a.restart must be a string"),
    ("services:\n  a:\n    image: x\n    ports: [{target: 1, foo: 2}]\n",
     "services.a.ports.0 additional properties 'foo' not allowed"),
    ("services:\n  a: {image: x, cpus: [1]}\n", "services.a.cpus must be a number or string"),
    ("services:\n  a:\n    build: .\n    depends_on: {b: {condition: bogus}}\n  b: {image: x}\n",
     "services.a.depends_on.b.condition value must be one of 'service_started', "
     "'service_healthy', 'service_completed_successfully'"),
])
def test_schema_errors_name_the_path(tmp_path: Path, text: str, message: str) -> None:
    error = fails(tmp_path, {"compose.yaml": text}, "validating")
    assert error == f"validating {tmp_path / 'compose.yaml'}: {message}"


def test_yaml_error_names_file_line_and_column(tmp_path: Path) -> None:
    error = fails(tmp_path, {"compose.yaml": "services:\n  a:\n    image: x\n   b: y\n"}, "failed to parse")
    assert error.startswith(f"failed to parse {tmp_path / 'compose.yaml'}: yaml: line 4, column 4: ")


@pytest.mark.parametrize("text", ["- a\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    fails(tmp_path, {"compose.yaml": text}, "top-level object must be a mapping")


def test_empty_file_has_no_services(tmp_path: Path) -> None:
    assert load(tmp_path, {"compose.yaml": ""}).services == {}


@pytest.mark.parametrize(("service", "message"), [
    # compose v2
    ("depends_on: [zz]", 'service "a" depends on undefined service "zz": invalid compose project'),
    ("links: [zz]", 'service "a" depends on undefined service "zz": invalid compose project'),
    ("volumes_from: [zz]", 'service "a" depends on undefined service "zz": invalid compose project'),
    ("network_mode: 'service:zz'", 'service "a" depends on undefined service "zz": invalid compose project'),
    ("networks: [n]", 'service "a" refers to undefined network n: invalid compose project'),
    ("volumes: ['vol:/v']", 'service "a" refers to undefined volume vol: invalid compose project'),
    ("secrets: [s]", 'service "a" refers to undefined secret s: invalid compose project'),
])
def test_unknown_references(tmp_path: Path, service: str, message: str) -> None:
    error = fails(tmp_path, {"compose.yaml": f"services:\n  a:\n    image: x\n    {service}\n"}, "undefined")
    assert error == message


def test_container_volumes_from_is_not_a_service(tmp_path: Path) -> None:
    a = load(tmp_path, {"compose.yaml": "services:\n  a: {image: x, volumes_from: ['container:c1']}\n"}).services["a"]
    assert a.volumes_from == ["container:c1"]


def test_dependency_cycle_names_the_services(tmp_path: Path) -> None:
    # compose v2: "dependency cycle detected: a -> b -> a"
    fails(tmp_path, {"compose.yaml": """
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, links: [a]}
        """}, r"^dependency cycle detected: a -> b -> a$")
    fails(tmp_path, {"compose.yaml": """
        services:
          a: {image: x}
          b: {image: x, depends_on: [c]}
          c: {image: x, depends_on: {d: {condition: service_healthy}}}
          d: {image: x, network_mode: "service:b"}
        """}, r"^dependency cycle detected: b -> c -> d -> b$")


def test_neither_image_nor_build(tmp_path: Path) -> None:
    # compose v2
    fails(tmp_path, {"compose.yaml": "services:\n  a: {}\n"},
          r'^service "a" has neither an image nor a build context specified: invalid compose project$')


def test_newer_keys_checked_by_berth(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": """
        services:
          a:
            image: x
            develop: {watch: [{path: ., action: sync, target: /app}]}
            post_start: [{command: echo hi, user: root}]
            pre_stop: [{command: [sh, -c, "exit 0"]}]
            depends_on: {b: {condition: service_healthy, restart: true, required: false}}
            ports: [{target: 80, published: "8000-8001", name: web, app_protocol: http}]
            healthcheck: {test: [CMD, "true"], start_interval: 2s}
          b: {image: x}
        """})
    a = project.services["a"]
    assert a.post_start[0].command == ["echo", "hi"] and a.post_start[0].user == "root"
    assert a.pre_stop[0].command == ["sh", "-c", "exit 0"]
    assert a.depends_on["b"] == Dependency("service_healthy", required=False, restart=True)
    assert a.ports[0].published == "8000-8001" and a.ports[0].name == "web"
    assert a.healthcheck is not None and a.healthcheck.start_interval == 2_000_000_000
    assert "develop" in a.other
    fails(tmp_path, {"compose.yaml": "services:\n  a: {image: x, post_start: [{user: root}]}\n"},
          r"services\.a\.post_start\.0 missing property 'command'")
    fails(tmp_path, {"compose.yaml": "services:\n  a: {image: x, depends_on: {b: {required: maybe}}}\n  b: {image: x}\n"},
          r"services\.a\.depends_on\.b\.required: failed to cast to expected type")
    fails(tmp_path, {"compose.yaml": "services:\n  a: {image: x, depends_on: {b: {required: 3}}}\n  b: {image: x}\n"},
          r"services\.a\.depends_on\.b\.required must be a boolean")
    fails(tmp_path, {"compose.yaml": "include: {path: x}\nservices: {}\n"}, r"include must be a array")


def test_listings(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": """
        services:
          z: {image: x}
          a: {image: x, depends_on: [m], volumes: ['v2:/b', 'v1:/a']}
          m: {image: x, depends_on: [y]}
          y: {image: x}
          c: {image: x}
          b: {image: x, depends_on: [z, c]}
        volumes: {v1: {}, v2: {}, unused: {}}
        """})
    assert config_services(project) == ["y", "m", "a", "c", "z", "b"]  # one of compose v2's orders
    assert config_volumes(project) == ["v1", "v2"]


def test_x_extensions_allowed_everywhere_and_kept_apart(tmp_path: Path) -> None:
    project = load(tmp_path, {"compose.yaml": """
        x-top: {a: 1}
        services:
          s: {image: x, x-mine: 2, logging: {driver: local, x-y: 1}}
        networks:
          default: {x-z: 3}
        """})
    assert project.extensions == {"x-top": {"a": 1}}
    assert project.services["s"].other == {"x-mine": 2}


def test_scale_and_replicas_must_agree(tmp_path: Path) -> None:
    # compose v2
    fails(tmp_path, {"compose.yaml": "services:\n  app: {image: x, scale: 2, deploy: {replicas: 3}}\n"},
          r"^services\.app: can't set distinct values on 'scale' and 'deploy\.replicas': invalid compose project$")
    project = load(tmp_path, {"compose.yaml": "services:\n  app: {image: x, scale: 2}\n"})
    assert project.services["app"].replicas == 2
    fails(tmp_path, {"compose.yaml": "services:\n  app: {image: x, container_name: c, deploy: {replicas: 2}}\n"},
          "container name must be unique")


# --- hostile files ---------------------------------------------------------------------

def test_billion_laughs_compose_file(tmp_path: Path) -> None:
    lines = ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"x-{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]")
    lines.append("services:\n  a:\n    image: x\n    command: *i")
    fails(tmp_path, {"compose.yaml": "\n".join(lines) + "\n"}, "too large once its aliases are expanded")


def test_huge_file_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.compose import yamlfile

    monkeypatch.setattr(yamlfile, "MAX_FILE_SIZE", 1000)
    fails(tmp_path, {"compose.yaml": "services: {}\n" + "#" * 2000 + "\n"}, "file too large")


def test_a_directory_is_not_a_compose_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(InvalidParameter, match="is a directory"):
        load(tmp_path, config_files=["dir.yaml"])


def test_deeply_nested_compose_file(tmp_path: Path) -> None:
    fails(tmp_path, {"compose.yaml": "services:\n  a:\n    image: x\n    labels: " + "[" * 5000 + "]" * 5000 + "\n"},
          "nested deeper")


def test_stdin_file(tmp_path: Path) -> None:
    write(tmp_path, {"base.yaml": "services:\n  a: {image: x}\n"})
    project = load(tmp_path, config_files=["base.yaml", "-"],
                   stdin_content=b"services:\n  a: {volumes: ['./d:/d']}\n")
    assert project.services["a"].volumes[0].source == str(tmp_path / "d")
    project = load(tmp_path, config_files=["-"], stdin_content=b"services:\n  b: {build: .}\n")
    assert project.working_dir == str(tmp_path)
    assert project.services["b"].build is not None
    assert project.services["b"].build.context == str(tmp_path)
