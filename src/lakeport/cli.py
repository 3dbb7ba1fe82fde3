"""The `lakeport` command."""

import argparse
import sys
from pathlib import Path

from lakeport.config import PlatformFileError, load_platform
from lakeport.dbt_manifest import RUN_POD_DUCKDB_PATH
from lakeport.schema import values_schema_json, values_yaml


def _validate(args) -> int:
    failed = False
    for path in args.files:
        try:
            load_platform(path)
        except PlatformFileError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        else:
            print(f"{path}: valid")
    return 1 if failed else 0


def _schema(args) -> int:
    _write(args.output, values_schema_json())
    if args.values_output:
        _write(args.values_output, values_yaml())
    return 0


def _prepare_dbt(args) -> int:
    from lakeport.dbt_manifest import prepare_manifest

    try:
        print(prepare_manifest(args.project_dir, if_stale=args.if_stale,
                               duckdb_path=args.duckdb_path))
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"lakeport prepare-dbt: {exc}", file=sys.stderr)
        return 1
    return 0


def _new_location(args) -> int:
    from lakeport.scaffold import ScaffoldError, new_location

    try:
        scaffold = new_location(
            args.name, args.dbt_project, args.output, module=args.module,
            image_repository=args.image_repository, base_image=args.base_image,
            partitions_start_date=args.partitions_start_date,
        )
    except ScaffoldError as exc:
        print(f"lakeport new-location: {exc}", file=sys.stderr)
        return 1
    where = scaffold.directory
    print(f"wrote the code location {args.name!r} in {where}:")
    for path in scaffold.files:
        if "dbt_project" not in path.relative_to(where).parts[1:2]:
            print(f"  {path.relative_to(where)}")
    print(f"  {scaffold.module}/dbt_project/ (a copy of {args.dbt_project}, with "
          "lakeport's profiles.yml)")
    print(f"next: docker build -t {args.image_repository or args.name}:0.1.0 {where}; push "
          f"it; add {where / 'platform-location.yaml'} to codeLocations in platform.yaml; "
          "lakeport validate; helm upgrade")
    return 0


def _dev(args) -> int:
    # Imported here: the other commands need none of the dev services' modules.
    from lakeport.dev.options import DevOptions
    from lakeport.dev.supervisor import run

    return run(DevOptions(
        platform_file=args.platform_file, data_dir=args.data_dir,
        webserver_port=args.webserver_port, code_server_port=args.code_server_port,
        postgres_port=args.postgres_port, s3_port=args.s3_port, log_level=args.log_level,
        s3_snapshot_interval=args.s3_snapshot_interval,
    ))


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakeport", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check platform.yaml files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_validate)

    schema = commands.add_parser("schema", help="write the chart's values.schema.json")
    schema.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    schema.add_argument("--values-output", help="also write the chart defaults (values.yaml)")
    schema.set_defaults(run=_schema)

    prepare = commands.add_parser(
        "prepare-dbt", help="compile a dbt project's manifest (image build, tests)"
    )
    prepare.add_argument("project_dir", metavar="PROJECT_DIR", help="holds dbt_project.yml")
    prepare.add_argument(
        "--if-stale", action="store_true", help="keep a manifest newer than the project files"
    )
    prepare.add_argument(
        "--duckdb-path", default=RUN_POD_DUCKDB_PATH,
        help="the database file runs will use (LAKEPORT_DUCKDB_PATH), so they start from "
        "this parse instead of parsing again (default: a run pod's, %(default)s)",
    )
    prepare.set_defaults(run=_prepare_dbt)

    scaffold = commands.add_parser(
        "new-location", help="make a code location (module, Dockerfile) from a dbt project"
    )
    scaffold.add_argument("name", metavar="NAME", help="the code location's name")
    scaffold.add_argument("--dbt-project", required=True, metavar="PATH",
                          help="the dbt project (holds dbt_project.yml); it is copied")
    scaffold.add_argument("--output", "-o", metavar="DIR", help="default: ./NAME")
    scaffold.add_argument("--module", help="the Python package (default: NAME with '_')")
    scaffold.add_argument("--image-repository", metavar="REPO",
                          help="the image in the platform.yaml block (default: NAME)")
    scaffold.add_argument("--base-image", default="lakeport-base:0.1.0",
                          help="what the Dockerfile builds FROM (default: %(default)s)")
    scaffold.add_argument("--partitions-start-date", metavar="YYYY-MM-DD",
                          help="first day of daily-partitioned models (default: 1 January)")
    scaffold.set_defaults(run=_new_location)

    dev = commands.add_parser(
        "dev", help="run the whole platform on this machine (what `make dev` does)",
        description="Start PostgreSQL, an S3 endpoint, the Iceberg catalog, the code "
        "server, the Dagster webserver and daemon; Ctrl-C stops them all. Flags override "
        "the platform file.",
    )
    dev.add_argument("platform_file", nargs="?", default="platform-config/local/platform.yaml",
                     type=Path, help="default: %(default)s")
    dev.add_argument("--data-dir", type=Path, help="state directory (default: dev.dataDir)")
    dev.add_argument("--webserver-port", type=int, help="default: dagster.webserver.port")
    dev.add_argument("--code-server-port", type=int,
                     help="port of the first code location, the others follow; "
                     "default: codeLocations[].port")
    dev.add_argument("--postgres-port", type=int, help="default: postgres.port")
    dev.add_argument("--s3-port", type=int, help="default: the port of objectStorage.endpoint")
    dev.add_argument("--log-level", type=str.upper,
                     choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     help="webserver, daemon and code server (default: from the file)")
    dev.add_argument("--s3-snapshot-interval", type=float, default=10.0, metavar="SECONDS",
                     help="how often S3 objects are copied to the data dir (default: 10)")
    dev.set_defaults(run=_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
