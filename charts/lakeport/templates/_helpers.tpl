{{/*
Names, labels and the pieces every lakeport pod shares.
Values are platform.yaml (camelCase, validated by values.schema.json, which
`lakeport schema` generates from src/lakeport/platform.py).
*/}}

{{- define "lakeport.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release name alone when it already contains the chart name (helm install lakeport ...). */}}
{{- define "lakeport.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lakeport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Usage: include "lakeport.selectorLabels" (list . "webserver") */}}
{{- define "lakeport.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "lakeport.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "lakeport.labels" -}}
{{- $ctx := index . 0 -}}
{{ include "lakeport.selectorLabels" . }}
helm.sh/chart: {{ include "lakeport.chart" $ctx }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: lakeport
{{- end -}}

{{/* repository[:tag][@digest], as lakeport.platform.Image.reference renders it. */}}
{{- define "lakeport.image" -}}
{{- .repository -}}{{- with .tag -}}:{{ . }}{{- end -}}{{- with .digest -}}@{{ . }}{{- end -}}
{{- end -}}

{{/* Object names, one place so templates and the effective platform agree. */}}
{{- define "lakeport.dagsterServiceAccount" -}}{{ include "lakeport.fullname" . }}-dagster{{- end -}}
{{- define "lakeport.instanceConfigMap" -}}{{ include "lakeport.fullname" . }}-dagster-instance{{- end -}}
{{- define "lakeport.platformConfigMap" -}}{{ include "lakeport.fullname" . }}-platform{{- end -}}
{{- define "lakeport.envConfigMap" -}}{{ include "lakeport.fullname" . }}-env{{- end -}}
{{- define "lakeport.workspaceConfigMap" -}}{{ include "lakeport.fullname" . }}-dagster-workspace{{- end -}}
{{- define "lakeport.webserverName" -}}{{ include "lakeport.fullname" . }}-webserver{{- end -}}
{{- define "lakeport.readOnlyWebserverName" -}}{{ include "lakeport.fullname" . }}-webserver-read-only{{- end -}}
{{- define "lakeport.daemonName" -}}{{ include "lakeport.fullname" . }}-daemon{{- end -}}
{{/* Usage: include "lakeport.codeLocationName" (list . "demo"): at most 40 + 6 + 17 = 63. */}}
{{- define "lakeport.codeLocationName" -}}{{ include "lakeport.fullname" (index . 0) }}-code-{{ index . 1 }}{{- end -}}
{{- define "lakeport.postgresName" -}}{{ include "lakeport.fullname" . }}-postgres{{- end -}}
{{- define "lakeport.polarisName" -}}{{ include "lakeport.fullname" . }}-polaris{{- end -}}
{{- define "lakeport.localstackName" -}}{{ include "lakeport.fullname" . }}-localstack{{- end -}}

{{/* The namespace run Jobs go to: dagster.runLauncher.jobNamespace, else the release's. */}}
{{- define "lakeport.jobNamespace" -}}
{{- .Values.dagster.runLauncher.jobNamespace | default .Release.Namespace -}}
{{- end -}}

{{/*
The effective platform settings: the values with what the chart itself provides filled in
(service URLs of in-chart components, the Secrets the chart makes). This is what
`lakeport` reads in every pod (LAKEPORT_PLATFORM_FILE) and what every template uses, so a
pod and the Python code can never disagree. Service names are fully qualified because run
Jobs may live in another namespace.
Returns YAML; use with fromYaml.
*/}}
{{- define "lakeport.effectivePlatform" -}}
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
{{- /* Helm applies no defaults inside list items: a location's unset keys get the
platform model's CodeLocation defaults here (tests/chart/test_platform_config.py holds the
two equal). */ -}}
{{- $locations := list -}}
{{- range $v.codeLocations -}}
  {{- $location := merge (deepCopy .) (dict "port" 4000 "replicas" 1 "env" (dict) "secretEnv" (list) "profiles" (list) "resources" (dict "requests" (dict "cpu" "100m" "memory" "512Mi") "limits" (dict "cpu" "1" "memory" "1Gi"))) -}}
  {{- $_ := set $location "image" (merge (deepCopy ($location.image | default dict)) (dict "pullPolicy" "IfNotPresent")) -}}
  {{- $locations = append $locations $location -}}
{{- end -}}
{{- $_ := set $v "codeLocations" $locations -}}
{{- toYaml $v -}}
{{- end -}}

{{/* The bucket of catalog.warehouse (s3://bucket/path). */}}
{{- define "lakeport.warehouseBucket" -}}
{{- (urlParse .Values.catalog.warehouse).host -}}
{{- end -}}

{{/*
Secrets reach processes only as environment variables with fixed names
(src/lakeport/credentials.py), always by secretKeyRef.
Usage: include "lakeport.secretEnv" (dict "ctx" . "catalogOptional" true)
catalogOptional: the Polaris principal's Secret is written by the bootstrap hook, after
long-running pods may already be starting (see templates/polaris/bootstrap-job.yaml).
*/}}
{{- define "lakeport.secretEnv" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .ctx) -}}
- name: LAKEPORT_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $p.postgres.passwordSecret.secretName }}
      key: {{ $p.postgres.passwordSecret.key }}
{{- with $p.objectStorage.credentialsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretAccessKeyKey }}
{{- end }}
{{- if eq $p.catalog.type "rest" }}
{{- with $p.catalog.rest.credentialsSecret }}
- name: LAKEPORT_CATALOG_CREDENTIAL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
      optional: {{ $.catalogOptional }}
{{- end }}
{{- end }}
{{- if eq $p.lineage.transport.type "http" }}
{{- with $p.lineage.transport.tokenSecret }}
- name: LAKEPORT_LINEAGE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where Dagster pods keep their instance: an emptyDir with dagster.yaml mounted into it. */}}
{{- define "lakeport.dagsterHome" -}}/opt/dagster/dagster_home{{- end -}}
{{- define "lakeport.platformDir" -}}/etc/lakeport{{- end -}}
{{- define "lakeport.platformFile" -}}/etc/lakeport/platform.yaml{{- end -}}

{{/* The lakeport image runs as this non-root user (any uid works: files are world-readable). */}}
{{- define "lakeport.uid" -}}10001{{- end -}}

{{- define "lakeport.podSecurityContext" -}}
{{- $gid := .gid | default .uid -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ $gid }}
fsGroup: {{ $gid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "lakeport.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "lakeport.resources" -}}
{{- $r := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- $list := dict -}}
{{- range $name, $q := (index $ $kind | default dict) -}}
{{- if not (kindIs "invalid" $q) -}}{{- $_ := set $list $name (toString $q) -}}{{- end -}}
{{- end -}}
{{- if $list -}}{{- $_ := set $r $kind $list -}}{{- end -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{/* Non-secret environment every lakeport pod (and every run pod) loads with envFrom. */}}
{{- define "lakeport.dagsterEnvFrom" -}}
- configMapRef:
    name: {{ include "lakeport.envConfigMap" . }}
{{- end -}}

{{/* Waits until Postgres accepts TCP connections, so Dagster processes do not crash-loop on first install. */}}
{{- define "lakeport.waitForPostgres" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .) -}}
- name: wait-for-postgres
  image: {{ include "lakeport.image" .Values.images.lakeport | quote }}
  imagePullPolicy: {{ .Values.images.lakeport.pullPolicy }}
  command:
    - python
    - -c
    - |
      import socket, sys, time
      host, port = sys.argv[1], int(sys.argv[2])
      for attempt in range(600):
          try:
              socket.create_connection((host, port), timeout=3).close()
              sys.exit(0)
          except OSError as exc:
              print(f"waiting for postgres at {host}:{port}: {exc}", flush=True)
              time.sleep(2)
      sys.exit(1)
    - {{ $p.postgres.host | quote }}
    - {{ $p.postgres.port | int | quote }}
  securityContext:
    {{- include "lakeport.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 100m, memory: 64Mi}
{{- end -}}

{{/* Volumes every Dagster pod mounts: instance, workspace, platform file, writable dirs. */}}
{{- define "lakeport.dagsterVolumes" -}}
- name: dagster-instance
  configMap:
    name: {{ include "lakeport.instanceConfigMap" . }}
- name: dagster-workspace
  configMap:
    name: {{ include "lakeport.workspaceConfigMap" . }}
- name: lakeport-platform
  configMap:
    name: {{ include "lakeport.platformConfigMap" . }}
- name: dagster-home
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "lakeport.dagsterVolumeMounts" -}}
- name: dagster-home
  mountPath: {{ include "lakeport.dagsterHome" . }}
- name: dagster-instance
  mountPath: {{ include "lakeport.dagsterHome" . }}/dagster.yaml
  subPath: dagster.yaml
  readOnly: true
- name: dagster-workspace
  mountPath: /opt/dagster/workspace
  readOnly: true
- name: lakeport-platform
  mountPath: {{ include "lakeport.platformDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "lakeport.dagsterEnv" -}}
- name: DAGSTER_HOME
  value: {{ include "lakeport.dagsterHome" . | quote }}
{{ include "lakeport.secretEnv" (dict "ctx" . "catalogOptional" true) }}
{{- end -}}

{{/* Config changes roll the pods that read them. */}}
{{- define "lakeport.checksums" -}}
checksum/instance: {{ include "lakeport.dagsterYaml" . | sha256sum }}
checksum/platform: {{ include "lakeport.effectivePlatform" . | sha256sum }}
checksum/workspace: {{ include (print .Template.BasePath "/dagster/workspace-configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* Polaris server and admin tool: metastore in Postgres (relational-jdbc). */}}
{{- define "lakeport.polarisPersistenceEnv" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .ctx) -}}
- name: POLARIS_PERSISTENCE_TYPE
  value: relational-jdbc
- name: QUARKUS_DATASOURCE_JDBC_URL
  value: {{ .jdbc | quote }}
- name: QUARKUS_DATASOURCE_USERNAME
  value: {{ $p.postgres.user | quote }}
- name: QUARKUS_DATASOURCE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $p.postgres.passwordSecret.secretName }}
      key: {{ $p.postgres.passwordSecret.key }}
{{- end -}}

{{/*
A platform pod's scheduling keys (a `scheduling:` block of platform.yaml), camelCase as
in any pod spec; unset keys are left out. Usage: include "lakeport.podScheduling" $w.scheduling
*/}}
{{- define "lakeport.podScheduling" -}}
{{- $s := . | default dict -}}
{{- with $s.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $s.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The pod template's own annotations and labels from a `scheduling:` block. */}}
{{- define "lakeport.podAnnotations" -}}
{{- with (. | default dict).podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{- define "lakeport.podLabels" -}}
{{- with (. | default dict).podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
