"""What `lakeport dev` runs with: the platform file's settings, overridden by the command
line's flags, as every service it starts sees them."""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lakeport.config import load_platform
from lakeport.platform import Platform

HOST = "127.0.0.1"
DEFAULT_S3_PORT = 4566


@dataclass
class DevOptions:
    platform_file: Path
    data_dir: Path | None = None
    webserver_port: int | None = None
    code_server_port: int | None = None
    postgres_port: int | None = None
    s3_port: int | None = None
    log_level: str | None = None
    s3_snapshot_interval: float = 10.0
    startup_timeout: float = 180.0


def effective_platform(options: DevOptions) -> Platform:
    """The file's settings with the command line's overrides, as every service sees them."""
    platform = load_platform(options.platform_file)
    data = platform.model_dump(mode="json", by_alias=True, exclude_none=True)
    file_data_dir = Path(platform.dev.data_dir)
    data_dir = (options.data_dir or file_data_dir).resolve()
    data["dev"]["dataDir"] = str(data_dir)
    # A relative compute-log dir inside the file's data dir moves with --data-dir.
    local_dir = Path(platform.compute_logs.local_dir)
    if not local_dir.is_absolute():
        try:
            local_dir = data_dir / local_dir.relative_to(file_data_dir)
        except ValueError:
            local_dir = local_dir.resolve()
    data["computeLogs"]["localDir"] = str(local_dir)
    dagster = data["dagster"]
    if options.webserver_port:
        dagster["webserver"]["port"] = options.webserver_port
    if options.code_server_port:
        # The first location on the port given, the others on the ports after it.
        for i, location in enumerate(data["codeLocations"]):
            location["port"] = options.code_server_port + i
    if options.log_level:
        dagster["webserver"]["logLevel"] = options.log_level.upper()
        dagster["daemon"]["logLevel"] = options.log_level.upper()
    data["postgres"]["host"] = HOST
    if options.postgres_port:
        data["postgres"]["port"] = options.postgres_port
    endpoint = platform.object_storage.endpoint
    s3_port = options.s3_port or (urlsplit(endpoint).port if endpoint else None) or DEFAULT_S3_PORT
    data["objectStorage"]["endpoint"] = f"http://{HOST}:{s3_port}"
    return Platform.model_validate(data)
