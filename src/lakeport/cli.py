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

    from lakeport.dev.supervisor import add_dev_command

    add_dev_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
