{{/*
The values are platform.yaml (camelCase, validated by values.schema.json, which
`lakeport schema` generates from src/lakeport/platform.py); this file turns them into the
settings every pod runs with.
*/}}

{{/*
The effective platform settings: the values with what the chart itself provides filled in
(service URLs of in-chart components, the Secrets the chart makes). This is what
`lakeport` reads in every pod (LAKEPORT_PLATFORM_FILE) and what every template uses, so a
pod and the Python code can never disagree. Service names are fully qualified because run
Jobs may live in another namespace.
Returns YAML; use with fromYaml. Fails the render first if the values break a rule of
the platform model (lakeport.validateValues), so no template renders from bad settings.
*/}}
{{- define "lakeport.effectivePlatform" -}}
{{- include "lakeport.validateValues" . -}}
{{- $v := deepCopy .Values -}}
{{- $ns := .Release.Namespace -}}
{{- $_ := set $v.dagster.runLauncher "platformConfigMap" (include "lakeport.platformConfigMap" .) -}}
{{- $_ := set $v.dagster.runLauncher "runPodLabels" (dict "app.kubernetes.io/part-of" "lakeport" "app.kubernetes.io/instance" .Release.Name) -}}
{{- if not $v.dagster.runLauncher.jobNamespace -}}
{{- $_ := set $v.dagster.runLauncher "jobNamespace" $ns -}}
{{- end -}}
{{- if $v.localstack.enabled -}}
  {{- if not $v.objectStorage.endpoint -}}
  {{- $_ := set $v.objectStorage "endpoint" (printf "http://%s.%s.svc:%d" (include "lakeport.localstackName" .) $ns (int $v.localstack.port)) -}}
  {{- end -}}
  {{- if not $v.objectStorage.credentialsSecret -}}
  {{- $_ := set $v.objectStorage "credentialsSecret" (dict "secretName" (printf "%s-credentials" (include "lakeport.localstackName" .))) -}}
  {{- end -}}
{{- end -}}
{{- with $v.objectStorage.credentialsSecret -}}
  {{- $_ := set . "accessKeyIdKey" (.accessKeyIdKey | default "AWS_ACCESS_KEY_ID") -}}
  {{- $_ := set . "secretAccessKeyKey" (.secretAccessKeyKey | default "AWS_SECRET_ACCESS_KEY") -}}
{{- end -}}
{{- if $v.postgres.enabled -}}
  {{- $_ := set $v.postgres "host" (printf "%s.%s.svc" (include "lakeport.postgresName" .) $ns) -}}
  {{- if not $v.postgres.passwordSecret -}}
  {{- $_ := set $v.postgres "passwordSecret" (dict "secretName" (include "lakeport.postgresName" .) "key" "password") -}}
  {{- end -}}
{{- end -}}
{{- if $v.polaris.enabled -}}
  {{- if not $v.polaris.rootCredentialsSecret -}}
  {{- $_ := set $v.polaris "rootCredentialsSecret" (dict "secretName" (printf "%s-root" (include "lakeport.polarisName" .)) "key" "credentials") -}}
  {{- end -}}
  {{- if eq $v.catalog.type "rest" -}}
    {{- if not $v.catalog.rest.uri -}}
    {{- $_ := set $v.catalog.rest "uri" (printf "http://%s.%s.svc:%d/api/catalog" (include "lakeport.polarisName" .) $ns (int $v.polaris.port)) -}}
    {{- end -}}
    {{- if not $v.catalog.rest.credentialsSecret -}}
    {{- $_ := set $v.catalog.rest "credentialsSecret" (dict "secretName" (printf "%s-principal" (include "lakeport.polarisName" .)) "key" "credential") -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- /* The model's defaults where values.yaml gives none (see lakeport.modelDefaults). */ -}}
{{- $defaults := fromYaml (include "lakeport.modelDefaults" .) -}}
{{- $locations := list -}}
{{- range $v.codeLocations -}}
  {{- $location := deepCopy . -}}
  {{- range $key, $default := $defaults.codeLocation -}}
    {{- /* Key by key, never merged into: a location's own `resources` is all it gets (a
    quantity it leaves out is unset), as for CodeLocation. */ -}}
    {{- if kindIs "invalid" (index $location $key) -}}{{- $_ := set $location $key (deepCopy $default) -}}{{- end -}}
  {{- end -}}
  {{- $_ := set $location "image" (merge (deepCopy ($location.image | default dict)) (dict "pullPolicy" "IfNotPresent")) -}}
  {{- $locations = append $locations $location -}}
{{- end -}}
{{- $_ := set $v "codeLocations" $locations -}}
{{- range $name, $profile := $v.resourceProfiles -}}
  {{- range $key, $default := $defaults.resourceProfile -}}
    {{- if kindIs "invalid" (index $profile $key) -}}{{- $_ := set $profile $key $default -}}{{- end -}}
  {{- end -}}
{{- end -}}
{{- range $path, $default := $defaults.resources -}}
  {{- $workload := $v -}}
  {{- range splitList "." $path -}}{{- $workload = index ($workload | default dict) . -}}{{- end -}}
  {{- if and (kindIs "map" $workload) (kindIs "invalid" $workload.resources) -}}
    {{- $_ := set $workload "resources" (deepCopy $default) -}}
  {{- end -}}
{{- end -}}
{{- toYaml $v -}}
{{- end -}}

{{/*
The platform model's defaults that Helm's values.yaml cannot give, which the effective
platform fills in (tests/chart/test_platform_config.py holds each equal to the model):
- codeLocation: CodeLocation's, for each key a location leaves out (Helm applies no
  defaults inside list items). Each is a whole value: a location that sets `resources`
  has exactly what it sets, as in the model.
- resourceProfile: ResourceProfile's, for each key a profile leaves out (values.yaml has
  entries only for the chart's own profile names, and a null removes one of theirs).
- resources: each workload's `resources` default, when a null removed the whole block
  (Helm drops the key; the model then gives its default, as lakeport validate does).
  A partial block needs none: Helm lays it over values.yaml's, as lakeport validate does.
Returns YAML; use with fromYaml.
*/}}
{{- define "lakeport.modelDefaults" -}}
codeLocation:
  port: 4000
  replicas: 1
  env: {}
  secretEnv: []
  profiles: []
  resources:
    requests: {cpu: 100m, memory: 512Mi}
    limits: {cpu: "1", memory: 1Gi}
resourceProfile:
  spillVolumeSize: 10Gi
resources:
  dagster.webserver:
    requests: {cpu: 100m, memory: 512Mi}
    limits: {cpu: "1", memory: 1Gi}
  dagster.readOnlyWebserver:
    requests: {cpu: 100m, memory: 512Mi}
    limits: {cpu: "1", memory: 1Gi}
  dagster.daemon:
    requests: {cpu: 100m, memory: 512Mi}
    limits: {cpu: "1", memory: 1Gi}
  postgres:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {cpu: "1", memory: 1Gi}
  polaris:
    requests: {cpu: 250m, memory: 512Mi}
    limits: {cpu: "2", memory: 1Gi}
  localstack:
    requests: {cpu: 100m, memory: 512Mi}
    limits: {cpu: "1", memory: 1Gi}
{{- end -}}

{{/* The bucket of catalog.warehouse (s3://bucket/path): LocalStack creates it. */}}
{{- define "lakeport.warehouseBucket" -}}
{{- (urlParse .Values.catalog.warehouse).host -}}
{{- end -}}
