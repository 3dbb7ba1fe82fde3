{{/*
The rules of src/lakeport/platform.py that values.schema.json cannot state: those across
fields (a profile named elsewhere, a key required when another is false, a limit below a
request). Helm checks the schema before it renders; these make `helm template` and `helm
install` without `lakeport validate` fail too, naming the field, with lakeport's own
message (`field: what is wrong`). Helm's `fail` stops at the first problem;
`lakeport validate` lists them all.

They are checks in a template rather than if/then in the generated schema: a schema error
says only "missing property 'host'" at a JSON pointer, and no schema can compare two
quantities, look a profile name up in a map or find a name used twice in a list.

lakeport.effectivePlatform includes lakeport.validateValues before anything else, so
every template that reads the settings fails with this message before it can trip over
the bad value itself (Helm renders deeper template directories first, so a check in one
top-level template could come too late); templates/dagster/platform-configmap.yaml always
renders it.
Checked on .Values, which Helm has already laid over values.yaml, as `lakeport validate`
lays platform.yaml over the chart defaults; the order is the model's (fields, then
Platform's cross-checks).
*/}}
{{- define "lakeport.validateValues" -}}
{{- $v := .Values -}}
{{- $profiles := $v.resourceProfiles | default dict -}}
{{- /* Fields: each model's own validators. */ -}}
{{- range $name, $image := $v.images -}}
{{- include "lakeport.validateImage" (list (printf "images.%s" $name) $image) -}}
{{- end -}}
{{- range $name := list "webserver" "readOnlyWebserver" "daemon" -}}
{{- include "lakeport.validateResources" (list (printf "dagster.%s.resources" $name) (index $v.dagster $name).resources) -}}
{{- end -}}
{{- range $i, $location := $v.codeLocations -}}
{{- include "lakeport.validateImage" (list (printf "codeLocations[%d].image" $i) $location.image) -}}
{{- include "lakeport.validateResources" (list (printf "codeLocations[%d].resources" $i) $location.resources) -}}
{{- range $key, $_ := $location.env -}}
{{- /* The pattern of lakeport.platform.SECRET_LOOKING. */ -}}
{{- if regexMatch "(?i)pass|secret|token|credential|private|api_?key" $key -}}
{{- fail (printf "codeLocations[%d].env.%s looks like a secret: give it with secretEnv (a Secret reference), never as a literal value" $i $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name, $profile := $profiles -}}
{{- include "lakeport.validateProfile" (list (printf "resourceProfiles.%s" $name) $profile) -}}
{{- end -}}
{{- if not $v.postgres.enabled -}}
{{- if not $v.postgres.host -}}
{{- fail "postgres.host: is required when postgres.enabled is false (external Postgres)" -}}
{{- end -}}
{{- if not $v.postgres.passwordSecret -}}
{{- fail "postgres.passwordSecret: is required when postgres.enabled is false (external Postgres)" -}}
{{- end -}}
{{- end -}}
{{- range $name := list "postgres" "polaris" "localstack" -}}
{{- include "lakeport.validateResources" (list (printf "%s.resources" $name) (index $v $name).resources) -}}
{{- end -}}
{{- /* Platform._cross_checks. */ -}}
{{- if not (hasKey $profiles "transform") -}}
{{- fail "resourceProfiles: must define the 'transform' profile (the default for runs)" -}}
{{- end -}}
{{- $have := keys $profiles | sortAlpha | join ", " -}}
{{- $default := $v.dagster.runLauncher.defaultProfile -}}
{{- if not (hasKey $profiles $default) -}}
{{- fail (printf "dagster.runLauncher.defaultProfile: %q names no profile in resourceProfiles (have: %s)" $default $have) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $location := $v.codeLocations -}}
{{- if hasKey $seen $location.name -}}
{{- fail (printf "codeLocations[%d].name: %q is also the name of codeLocations[%v]; code location names must be unique" $i $location.name (get $seen $location.name)) -}}
{{- end -}}
{{- $_ := set $seen $location.name $i -}}
{{- range $j, $profile := $location.profiles -}}
{{- if not (hasKey $profiles $profile) -}}
{{- fail (printf "codeLocations[%d].profiles[%d]: %q names no profile in resourceProfiles (have: %s)" $i $j $profile $have) -}}
{{- end -}}
{{- end -}}
{{- if and $location.profiles (not (has $default $location.profiles)) -}}
{{- fail (printf "codeLocations[%d].profiles: must include the default profile %q (dagster.runLauncher.defaultProfile): a run that asks for none gets it" $i $default) -}}
{{- end -}}
{{- $names := dict -}}
{{- range $env := $location.secretEnv -}}
{{- if hasKey $names $env.name -}}{{- include "lakeport.failEnvTwice" $i -}}{{- end -}}
{{- $_ := set $names $env.name true -}}
{{- end -}}
{{- range $key, $_ := $location.env -}}
{{- if hasKey $names $key -}}{{- include "lakeport.failEnvTwice" $i -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $t := $v.lineage.transport -}}
{{- if and (eq $t.type "http") (not $t.url) -}}
{{- fail "lineage.transport.url: is required when type is http" -}}
{{- end -}}
{{- if and (eq $t.type "file") (not $t.logFilePath) -}}
{{- fail "lineage.transport.logFilePath: is required when type is file" -}}
{{- end -}}
{{- if and (ne $t.type "http") $t.tokenSecret -}}
{{- fail (printf "lineage.transport.tokenSecret: is only sent by the http transport (type is %s)" $t.type) -}}
{{- end -}}
{{- if and (eq $v.catalog.type "rest") (not $v.polaris.enabled) -}}
{{- if not $v.catalog.rest.uri -}}
{{- fail "catalog.rest.uri: is required when polaris.enabled is false" -}}
{{- end -}}
{{- if not $v.catalog.rest.credentialsSecret -}}
{{- fail "catalog.rest.credentialsSecret: is required when polaris.enabled is false" -}}
{{- end -}}
{{- end -}}
{{- $ro := $v.dagster.readOnlyWebserver -}}
{{- $in := $v.ingress -}}
{{- if and $in.enabled $ro.enabled (not $ro.host) -}}
{{- fail "dagster.readOnlyWebserver.host: is required when ingress.enabled is true: the read-only UI gets its own host" -}}
{{- end -}}
{{- if and $ro.host (eq $ro.host ($in.host | default "")) -}}
{{- fail (printf "dagster.readOnlyWebserver.host: %q must differ from ingress.host (that host is the full UI's)" $ro.host) -}}
{{- end -}}
{{- if and $in.enabled $in.tls $in.host -}}
{{- $covered := list -}}
{{- range $in.tls -}}{{- $covered = concat $covered (.hosts | default list) -}}{{- end -}}
{{- if and $covered (not (has $in.host $covered)) -}}
{{- fail (printf "ingress.tls: no TLS entry covers ingress.host %q (the entries' hosts: %s)" $in.host ($covered | uniq | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A code location's env and secretEnv name one variable twice; the names are not shown,
as lakeport validate shows no value of a secretEnv field. Usage: include "lakeport.failEnvTwice" $i */}}
{{- define "lakeport.failEnvTwice" -}}
{{- fail (printf "codeLocations[%d].secretEnv: sets an environment variable twice (in env and secretEnv, or twice in secretEnv)" .) -}}
{{- end -}}

{{/* Image._tag_or_digest. Usage: include "lakeport.validateImage" (list "images.lakeport" $image) */}}
{{- define "lakeport.validateImage" -}}
{{- $image := index . 1 | default dict -}}
{{- if not (or $image.tag $image.digest) -}}
{{- fail (printf "%s: an image needs a tag or a digest" (index . 0)) -}}
{{- end -}}
{{- end -}}

{{/*
Resources._limits_cover_requests: a limit below its request, which the API server rejects
for a pod (and, in a profile, only when a run's pod is created).
Usage: include "lakeport.validateResources" (list "postgres.resources" $resources)
*/}}
{{- define "lakeport.validateResources" -}}
{{- $r := index . 1 | default dict -}}
{{- include "lakeport.validateLimits" (list (index . 0) ($r.requests | default dict) ($r.limits | default dict)) -}}
{{- end -}}

{{/* _check_limits_cover_requests: each of cpu and memory, when both are set.
Usage: include "lakeport.validateLimits" (list $path $requests $limits) */}}
{{- define "lakeport.validateLimits" -}}
{{- $requests := index . 1 -}}
{{- $limits := index . 2 -}}
{{- range $name := list "cpu" "memory" -}}
{{- $request := index $requests $name -}}
{{- $limit := index $limits $name -}}
{{- if and (not (kindIs "invalid" $request)) (not (kindIs "invalid" $limit)) -}}
{{- if gt (include "lakeport.quantity" (list $name $request) | float64) (include "lakeport.quantity" (list $name $limit) | float64) -}}
{{- fail (printf "%s: limits.%s (%v) is below requests.%s (%v)" (index $ 0) $name $limit $name $request) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
DuckDBOverrides._one_memory_setting and ResourceProfile._consistent: limits.memory is set,
limits cover requests, DuckDB's memory limit is below the pod's and its spill cap below the
spill volume (an unset spillVolumeSize is the model's default, as the effective platform
fills it in: lakeport.modelDefaults).
Usage: include "lakeport.validateProfile" (list "resourceProfiles.large" $profile)
*/}}
{{- define "lakeport.validateProfile" -}}
{{- $path := index . 0 -}}
{{- $profile := index . 1 | default dict -}}
{{- $requests := $profile.requests | default dict -}}
{{- $limits := $profile.limits | default dict -}}
{{- $duckdb := $profile.duckdb | default dict -}}
{{- if and (not (kindIs "invalid" $duckdb.memoryLimitFraction)) (not (kindIs "invalid" $duckdb.memoryLimit)) -}}
{{- fail (printf "%s.duckdb: set memoryLimitFraction or memoryLimit, not both" $path) -}}
{{- end -}}
{{- if kindIs "invalid" $limits.memory -}}
{{- fail (printf "%s: limits.memory is required: DuckDB's memory limit is derived from it" $path) -}}
{{- end -}}
{{- include "lakeport.validateLimits" (list $path $requests $limits) -}}
{{- if not (kindIs "invalid" $duckdb.memoryLimit) -}}
{{- if ge (include "lakeport.quantity" (list "memory" $duckdb.memoryLimit) | float64) (include "lakeport.quantity" (list "memory" $limits.memory) | float64) -}}
{{- fail (printf "%s: duckdb.memoryLimit (%v) must be below limits.memory (%v)" $path $duckdb.memoryLimit $limits.memory) -}}
{{- end -}}
{{- end -}}
{{- $spill := $profile.spillVolumeSize -}}
{{- if kindIs "invalid" $spill -}}{{- $spill = (fromYaml (include "lakeport.modelDefaults" nil)).resourceProfile.spillVolumeSize -}}{{- end -}}
{{- if not (kindIs "invalid" $duckdb.maxTempDirectorySize) -}}
{{- if ge (include "lakeport.quantity" (list "memory" $duckdb.maxTempDirectorySize) | float64) (include "lakeport.quantity" (list "memory" $spill) | float64) -}}
{{- fail (printf "%s: spillVolumeSize (%v) must be larger than duckdb.maxTempDirectorySize (%v)" $path $spill $duckdb.maxTempDirectorySize) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A Kubernetes quantity (512Mi, 2, 500m, 1e3; the schema has checked its form) as a number,
as lakeport.quantities reads it: bytes for "memory" (whole bytes, as memory_bytes
truncates), cores for "cpu". Returns the number as text; use with float64. float64 holds
every practical quantity exactly (integers up to 2^53 bytes, 8 PiB).
Usage: include "lakeport.quantity" (list "memory" "512Mi")
*/}}
{{- define "lakeport.quantity" -}}
{{- $text := index . 1 | toString -}}
{{- $number := regexFind "^([0-9]+[.]?[0-9]*|[.][0-9]+)" $text -}}
{{- $suffix := trimPrefix $number $text -}}
{{- $scale := dict "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "E" 1000000000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 -}}
{{- $value := 0.0 -}}
{{- if eq $suffix "m" -}}
{{- $value = divf $number 1000 -}}
{{- else if hasKey $scale $suffix -}}
{{- $value = mulf $number (index $scale $suffix) -}}
{{- else -}}
{{- /* No suffix, or a decimal exponent (e3, E-2), which float64 reads itself. */ -}}
{{- $value = float64 $text -}}
{{- end -}}
{{- if eq (index . 0) "memory" -}}{{- $value = floor $value -}}{{- end -}}
{{- $value -}}
{{- end -}}
