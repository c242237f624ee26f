"""`energy-edge manifest`: build deployment manifests the way iotedgedev and `AzureIoTEdge@2` do, and check them.

Build (``energy-edge manifest build --platform arm64v8 [--registry R] [--version V]``):

1. ``${NAME}`` is replaced from the environment, then from ``.env`` beside the template (the emulator's
   rule, see :func:`energy_edge.hub.manifest.load_manifest`); ``--registry`` sets ``CONTAINER_REGISTRY_ADDRESS``.
2. Every ``modules/<folder>/module.json`` is read (``${NAME}`` expanded too) and an image placeholder that
   is a module's whole ``settings.image`` is replaced: ``${MODULES.<folder>}`` by the build for ``--platform``,
   ``${MODULES.<folder>.<platform>}`` by that platform's, both as
   ``{repository}:{version}[-CONTAINER_TAG]-{platform}`` with the repository in lower case.
3. ``createOptions`` objects become minified JSON strings cut into 512-character pieces
   (``createOptions``, ``createOptions01`` … ``createOptions07``; more is an error, as IoT Hub allows 4 KiB).
4. ``$schema-template`` is dropped and the result written to ``config/<name>.<platform>.json``, where
   ``<name>`` is the template's file name without ``.template.json``.

Layered deployments (``$edgeAgent`` keys ``properties.desired.modules.<m>``, ``$edgeHub`` keys
``properties.desired.routes.<r>``, module twin keys ``properties.desired.<path>``) build the same way.

Check (``energy-edge manifest check``; the same functions run in ``make test``): every template validates
against the official IoT Edge JSON Schemas (SchemaStore's deployment template 4.0, edgeAgent 1.1, edgeHub 1.2);
each module's desired properties validate against the configuration model the module registers in the
``energy_edge_base.schemas`` entry-point group (``config.<module id>``); every route parses and names
modules, outputs and inputs that exist and that the module class declares it sends on and handles (`outputs`,
`input_names`, which the runtime enforces); nothing
but one named output reaches ``$upstream`` and never raw telemetry; every module built from this repository
has its folder, ``module.json`` and a Dockerfile per platform. A layered template is checked merged onto
every base template.
"""

from __future__ import annotations

from energy_edge.hub.routes import RouteError, parse_route
from energy_edge.ops.manifest.build import (
    build_manifest,
    image_for,
    output_name,
    stringify_create_options,
    template_env,
    write_manifest,
)
from energy_edge.ops.manifest.checks import (
    ASSET_LISTS,
    ASSET_MODULES,
    CAPABILITY_CHANGES_PER_DAY,
    UPSTREAM_BUDGET_PER_DAY,
    Repository,
    asset_problems,
    budget_problems,
    check_manifest,
    check_repository,
    desired_problems,
    folder_problems,
    load_repository,
    load_template,
    route_problems,
    set_site_assets,
    site_assets,
    templates,
    upstream_per_day,
    variable_problems,
)
from energy_edge.ops.manifest.cli import (
    add_manifest_parser,
)
from energy_edge.ops.manifest.images import (
    ModuleImage,
    module_images,
    read_module_json,
)
from energy_edge.ops.manifest.interfaces import (
    ModuleInterface,
    module_interface,
)
from energy_edge.ops.manifest.schema import (
    schema_problems,
)
from energy_edge.ops.manifest.structure import (
    CREATE_OPTIONS_CHUNK,
    CREATE_OPTIONS_MAX_CHUNKS,
    DEFAULT_PLATFORM,
    DESIRED,
    LAYER_PREFIX,
    PLATFORMS,
    SCHEMA_URLS,
    SYSTEM_SECTIONS,
    TEMPLATE_SUFFIX,
    ManifestBuildError,
    Problem,
    agent_modules,
    apply_layer,
    drop_modules,
    is_layered,
    modules_content,
    routes_of,
    user_modules,
)

__all__ = [
    "ASSET_LISTS",
    "ASSET_MODULES",
    "CAPABILITY_CHANGES_PER_DAY",
    "CREATE_OPTIONS_CHUNK",
    "CREATE_OPTIONS_MAX_CHUNKS",
    "DEFAULT_PLATFORM",
    "DESIRED",
    "LAYER_PREFIX",
    "PLATFORMS",
    "SCHEMA_URLS",
    "SYSTEM_SECTIONS",
    "TEMPLATE_SUFFIX",
    "UPSTREAM_BUDGET_PER_DAY",
    "ManifestBuildError",
    "ModuleImage",
    "ModuleInterface",
    "Problem",
    "Repository",
    "RouteError",
    "add_manifest_parser",
    "agent_modules",
    "apply_layer",
    "asset_problems",
    "budget_problems",
    "build_manifest",
    "check_manifest",
    "check_repository",
    "desired_problems",
    "drop_modules",
    "folder_problems",
    "image_for",
    "is_layered",
    "load_repository",
    "load_template",
    "module_images",
    "module_interface",
    "modules_content",
    "output_name",
    "parse_route",
    "read_module_json",
    "route_problems",
    "routes_of",
    "schema_problems",
    "set_site_assets",
    "site_assets",
    "stringify_create_options",
    "template_env",
    "templates",
    "upstream_per_day",
    "user_modules",
    "variable_problems",
    "write_manifest",
]
