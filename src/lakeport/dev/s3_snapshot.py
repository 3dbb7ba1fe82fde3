"""Keeping the local S3 endpoint's objects across restarts of `lakeport dev`.

moto's server holds every object in memory. Its request recorder could replay a session,
but it replays multipart uploads with upload ids the new server never issued (DuckDB and
pyarrow write that way), and it grows with every request. Instead the supervisor copies
the buckets through the S3 API into the data directory: on start the copy is uploaded
into the fresh server, while running it is refreshed every few seconds (only objects
whose ETag changed are downloaded), and once more on a clean stop. What a hard kill
(SIGKILL, power loss) takes away is what changed since the last refresh.

Layout: `<dir>/manifest.json` (bucket -> key -> etag, content type, file) and
`<dir>/objects/<sha256 of bucket/key>`; keys never become paths, so any key is safe.
"""

import hashlib
import json
import os
from pathlib import Path


class S3Snapshot:
    def __init__(self, directory: Path, client, buckets: list[str]):
        self.directory = directory
        self.client = client
        self.buckets = buckets
        self._manifest: dict[str, dict[str, dict]] = self._read_manifest()

    @property
    def _manifest_file(self) -> Path:
        return self.directory / "manifest.json"

    @property
    def _objects(self) -> Path:
        return self.directory / "objects"

    def object_count(self) -> int:
        return sum(len(objects) for objects in self._manifest.values())

    def restore(self) -> int:
        """Upload the kept objects into the (empty) server; return how many."""
        restored = 0
        for bucket, objects in self._manifest.items():
            if bucket not in self.buckets:
                continue
            for key, entry in objects.items():
                blob = self._objects / entry["file"]
                if not blob.exists():
                    continue
                extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
                with open(blob, "rb") as body:
                    response = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
                # A multipart original comes back as one part: a different ETag, same bytes.
                entry["etag"] = response.get("ETag", entry["etag"])
                restored += 1
        self._write_manifest()
        return restored

    def save(self) -> int:
        """Bring the copy up to date with the server; return how many objects were fetched."""
        fetched = 0
        self._objects.mkdir(parents=True, exist_ok=True)
        for bucket in self.buckets:
            kept = self._manifest.setdefault(bucket, {})
            seen = set()
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    key, etag = item["Key"], item["ETag"]
                    seen.add(key)
                    if key in kept and kept[key]["etag"] == etag:
                        continue
                    response = self.client.get_object(Bucket=bucket, Key=key)
                    name = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()
                    _write_atomically(self._objects / name, response["Body"].read())
                    kept[key] = {
                        "etag": response.get("ETag", etag),
                        "content_type": response.get("ContentType"),
                        "file": name,
                    }
                    fetched += 1
            for key in set(kept) - seen:
                (self._objects / kept.pop(key)["file"]).unlink(missing_ok=True)
        self._write_manifest()
        return fetched

    def _read_manifest(self) -> dict:
        try:
            return json.loads(self._manifest_file.read_text())
        except FileNotFoundError:
            return {}

    def _write_manifest(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self._manifest_file, json.dumps(self._manifest, indent=1).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    # A stop in the middle of a write must leave the previous copy, not half a file.
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)
