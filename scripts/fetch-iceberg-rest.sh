#!/usr/bin/env bash
# The Iceberg REST catalog server the REST-catalog tests run: Apache Iceberg's
# iceberg-open-api jar, pinned, from Maven Central (its plain jar is a runnable shaded jar
# up to 1.10.1, Main-Class org.apache.iceberg.rest.RESTCatalogServer). Idempotent.
# Usage: fetch-iceberg-rest.sh DIR  -> DIR/iceberg-rest-server.jar
set -euo pipefail
VERSION=1.10.1
SHA1=6561d1d876f1b41e6e462f8992fd4bbb82a62f60
dir=${1:?usage: fetch-iceberg-rest.sh DIR}
target="$dir/iceberg-rest-server-$VERSION.jar"
if [ -f "$target" ]; then
  exit 0
fi
mkdir -p "$dir"
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
mvn -q -B dependency:copy -Dmdep.useBaseVersion=true \
  -Dartifact="org.apache.iceberg:iceberg-open-api:$VERSION" -DoutputDirectory="$repo" \
  -Dmaven.repo.local="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
jar="$repo/iceberg-open-api-$VERSION.jar"
actual=$(sha1sum "$jar" | cut -d' ' -f1)
if [ "$actual" != "$SHA1" ]; then
  echo "fetch-iceberg-rest: $jar has sha1 $actual, expected $SHA1" >&2
  exit 1
fi
mv "$jar" "$target"
