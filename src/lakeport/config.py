"""Reading `platform.yaml` the way Helm reads a values file, with errors that say where.

The file is laid over the chart defaults with Helm's rules (maps merge key by key, lists
and scalars replace, `null` removes a default), so `lakeport validate` judges exactly the
values `helm install -f platform.yaml` would render. Every problem is reported as
`file:line: dotted.field: message (got value)`; values that may be secrets are never shown.
"""

import copy
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lakeport.platform import SECRET_LOOKING, FieldError, Platform

# Where run pods and Dagster pods find the effective settings (the chart mounts them here).
PLATFORM_FILE_ENV = "LAKEPORT_PLATFORM_FILE"



@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '<top level>'}: {self.message}"


class PlatformFileError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@cache
def chart_defaults() -> dict[str, Any]:
    """The chart's values.yaml, as the model's defaults produce it."""
    return Platform().model_dump(mode="json", by_alias=True, exclude_none=True)


def helm_merge(defaults: Any, override: Any) -> Any:
    """Helm's coalescing of a user values file over the chart's values.yaml."""
    if not isinstance(defaults, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(defaults)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_platform(path: str | os.PathLike) -> Platform:
    """Validate one platform file; raise PlatformFileError listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        problem = Problem(name, None, "", f"cannot read file: {exc.strerror}")
        raise PlatformFileError([problem]) from None
    return parse_platform(text, name)


def parse_platform(text: str, name: str = "<platform.yaml>") -> Platform:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        problem = Problem(name, line, "", f"not valid YAML: {reason}")
        raise PlatformFileError([problem]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PlatformFileError(
            [Problem(name, 1, "", f"must be a mapping of settings, got {type(data).__name__}")]
        )
    try:
        return Platform.model_validate(helm_merge(chart_defaults(), data))
    except ValidationError as exc:
        raise PlatformFileError(_problems(exc, name, node)) from None


def load_effective_platform() -> Platform:
    """The settings of this pod or process: the file the chart mounted, or `make dev` set."""
    path = os.environ.get(PLATFORM_FILE_ENV)
    if not path:
        raise PlatformFileError(
            [Problem("<environment>", None, PLATFORM_FILE_ENV, "is not set; it must name the "
                     "platform.yaml this process runs with")]
        )
    return load_platform(path)


def _problems(exc: ValidationError, name: str, node) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # pydantic marks a bad mapping key as `<key>.[key]`; the key itself is the field.
        loc = tuple(str(p) for p in err["loc"] if p != "[key]")
        value = err.get("input")
        message = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc, value, message = cause.loc, cause.value, cause.message
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are not ignored)"
        field = ".".join(loc)
        hide = _may_be_secret(err["type"], loc) or err["type"] == "missing"
        if hide or value is None or isinstance(value, dict):
            shown = ""
        else:
            shown = f" (got {value!r})"
        problems.append(Problem(name, _line_of(node, loc), field, message + shown))
    return problems


def _may_be_secret(error_type: str, loc: tuple[str, ...]) -> bool:
    return error_type == "literal_secret" or any(SECRET_LOOKING.search(part) for part in loc)


def _line_of(node, loc: tuple[str, ...]) -> int | None:
    """The line of the deepest part of `loc` that the file itself contains."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line = key.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line
