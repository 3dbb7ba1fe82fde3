{{/*
dagster.yaml for webserver, daemon, code server and (through the instance ref) run pods.
No secret value appears here: the Postgres password is read from LAKEPORT_POSTGRES_PASSWORD
(`env:` syntax), which every pod gets by secretKeyRef.
*/}}

{{/* dagster-postgres' `postgres_db` block, the same for the three storages
(lakeport.postgres_storage.postgres_db_config builds the same keys for `lakeport dev`). */}}
{{- define "lakeport.postgresDb" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .) -}}
postgres_db:
  # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, whose server-side parameters
  # break dagster-postgres' `NOTIFY run_events, %(id)s`; psycopg2 binds client-side.
  scheme: postgresql+psycopg2
  hostname: {{ $p.postgres.host | quote }}
  port: {{ $p.postgres.port | int }}
  username: {{ $p.postgres.user | quote }}
  password:
    env: LAKEPORT_POSTGRES_PASSWORD
  db_name: {{ $p.postgres.dagsterDatabase | quote }}
  params:
    sslmode: {{ $p.postgres.sslMode | quote }}
{{- end -}}

{{/*
The launcher's run_k8s_config: the default profile exactly as
lakeport.profiles.run_k8s_config renders it (container resources, the spill volume, the
platform ConfigMap, their mounts), plus what every run needs whatever its profile:
secret env by reference, the pod security context, no API token, the Job's TTL/backoff.
merge_behavior is not part of it: the
launcher's schema has no such key, and the merge follows the run tag's SHALLOW, so a run
tagged with another profile replaces only resources, volume_mounts and volumes and these
extra keys survive.
*/}}
{{- define "lakeport.runK8sConfig" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .) -}}
{{- $name := $p.dagster.runLauncher.defaultProfile -}}
{{- $profile := index $p.resourceProfiles $name -}}
container_config:
  resources:
    {{- include "lakeport.resources" $profile | nindent 4 }}
  volume_mounts:
    - name: duckdb-spill
      mount_path: /var/lib/lakeport/spill
    - name: lakeport-platform
      mount_path: {{ include "lakeport.platformDir" . }}
      read_only: true
  env:
    {{- include "lakeport.secretEnvSnake" (dict "ctx" .) | trim | nindent 4 }}
pod_spec_config:
  volumes:
    - name: duckdb-spill
      empty_dir:
        size_limit: {{ $profile.spillVolumeSize | toString | quote }}
    - name: lakeport-platform
      config_map:
        name: {{ $p.dagster.runLauncher.platformConfigMap }}
  {{- include "lakeport.runPodScheduling" $profile.scheduling | nindent 2 }}
  security_context:
    {{- include "lakeport.podSecurityContextSnake" (dict "uid" (include "lakeport.uid" .)) | nindent 4 }}
  # A run executes in its own pod (in-process/multiprocess executors) and never calls the
  # Kubernetes API; only the daemon's launcher does.
  automount_service_account_token: false
pod_template_spec_metadata:
  annotations: {{ ($profile.scheduling | default dict).podAnnotations | default dict | toJson }}
  labels: {{ merge (deepCopy $p.dagster.runLauncher.runPodLabels) (($profile.scheduling | default dict).podLabels | default dict) | toJson }}
job_spec_config:
  ttl_seconds_after_finished: {{ $p.dagster.runLauncher.finishedJobTtlSeconds | int }}
  backoff_limit: {{ $p.dagster.runLauncher.backoffLimit | int }}
{{- end -}}

{{/*
A profile's scheduling keys of a run pod spec, in dagster-k8s's snake_case, every key
even when empty: lakeport.profiles.pod_scheduling renders the same for a run's tag.
*/}}
{{- define "lakeport.runPodScheduling" -}}
{{- $s := . | default dict -}}
node_selector: {{ $s.nodeSelector | default dict | toJson }}
tolerations:
{{- range $s.tolerations }}
  - operator: {{ .operator | default "Equal" | quote }}
    {{- with .key }}
    key: {{ . | quote }}
    {{- end }}
    {{- with .value }}
    value: {{ . | quote }}
    {{- end }}
    {{- with .effect }}
    effect: {{ . | quote }}
    {{- end }}
    {{- if not (kindIs "invalid" .tolerationSeconds) }}
    toleration_seconds: {{ .tolerationSeconds | int }}
    {{- end }}
{{- else }} []
{{- end }}
affinity: {{ $s.affinity | default dict | toJson }}
priority_class_name: {{ $s.priorityClassName | default nil | toJson }}
image_pull_secrets:
{{- range $s.imagePullSecrets }}
  - name: {{ . | quote }}
{{- else }} []
{{- end }}
{{- end -}}

{{/* The secret env of run pods in dagster-k8s's snake_case; not optional (see the bootstrap Job). */}}
{{- define "lakeport.secretEnvSnake" -}}
{{- range (fromYamlArray (include "lakeport.secretEnv" (dict "ctx" .ctx "catalogOptional" false))) }}
- name: {{ .name }}
  value_from:
    secret_key_ref:
      name: {{ .valueFrom.secretKeyRef.name }}
      key: {{ .valueFrom.secretKeyRef.key }}
      {{- if hasKey .valueFrom.secretKeyRef "optional" }}
      optional: {{ .valueFrom.secretKeyRef.optional }}
      {{- end }}
{{- end }}
{{- end -}}

{{/* lakeport.podSecurityContext in dagster-k8s's snake_case, for run pods' pod_spec_config. */}}
{{- define "lakeport.podSecurityContextSnake" -}}
run_as_non_root: true
run_as_user: {{ .uid }}
run_as_group: {{ .uid }}
fs_group: {{ .uid }}
seccomp_profile:
  type: RuntimeDefault
{{- end -}}

{{/* The instance's dagster.yaml: the instance ConfigMap's, and (without run_launcher) the
migrate hook's copy. Returns YAML. */}}
{{- define "lakeport.dagsterYaml" -}}
{{- $p := fromYaml (include "lakeport.effectivePlatform" .) -}}
{{- $fullname := include "lakeport.fullname" . -}}
telemetry:
  enabled: false
{{- /* dagster-postgres' storages on a connection pool (lakeport/postgres_storage.py): every
process here, run workers included, has lakeport installed. */}}
run_storage:
  module: lakeport.postgres_storage
  class: PooledPostgresRunStorage
  config:
    {{- include "lakeport.postgresDb" . | nindent 4 }}
event_log_storage:
  module: lakeport.postgres_storage
  class: PooledPostgresEventLogStorage
  config:
    {{- include "lakeport.postgresDb" . | nindent 4 }}
schedule_storage:
  module: lakeport.postgres_storage
  class: PooledPostgresScheduleStorage
  config:
    {{- include "lakeport.postgresDb" . | nindent 4 }}
run_launcher:
  # dagster-k8s' K8sRunLauncher; its failure message also names an OOMKill and the
  # run's resource profile (src/lakeport/run_launcher.py).
  module: lakeport.run_launcher
  class: LakeportK8sRunLauncher
  config:
    load_incluster_config: true
    job_namespace: {{ $p.dagster.runLauncher.jobNamespace | quote }}
    service_account_name: {{ include "lakeport.dagsterServiceAccount" . | quote }}
    instance_config_map: {{ include "lakeport.instanceConfigMap" . | quote }}
    dagster_home: {{ include "lakeport.dagsterHome" . | quote }}
    job_image: {{ include "lakeport.image" $p.images.lakeport | quote }}
    image_pull_policy: {{ $p.images.lakeport.pullPolicy | quote }}
    env_config_maps:
      - {{ include "lakeport.envConfigMap" . | quote }}
    # No launcher-level volumes: a run's profile tag replaces the whole volume list
    # (SHALLOW), so the platform ConfigMap rides in run_k8s_config with every profile.
    # The root filesystem stays writable in run pods: dbt writes target/ and logs/ next
    # to the project inside the image.
    security_context:
      allowPrivilegeEscalation: false
      privileged: false
      capabilities:
        drop: ["ALL"]
    labels:
      app.kubernetes.io/part-of: lakeport
      app.kubernetes.io/instance: {{ .Release.Name | quote }}
    run_k8s_config:
      {{- include "lakeport.runK8sConfig" . | nindent 6 }}
compute_logs:
  module: dagster_aws.s3.compute_log_manager
  class: S3ComputeLogManager
  config:
    bucket: {{ $p.computeLogs.bucket | quote }}
    prefix: {{ $p.computeLogs.prefix | quote }}
    local_dir: {{ $p.computeLogs.localDir | quote }}
    region: {{ $p.objectStorage.region | quote }}
    upload_interval: {{ $p.computeLogs.uploadIntervalSeconds | int }}
    skip_empty_files: {{ $p.computeLogs.skipEmptyFiles }}
    {{- with $p.objectStorage.endpoint }}
    endpoint_url: {{ . | quote }}
    use_ssl: {{ hasPrefix "https://" . }}
    {{- end }}
run_monitoring:
  enabled: {{ $p.dagster.runMonitoring.enabled }}
  start_timeout_seconds: {{ $p.dagster.runMonitoring.startTimeoutSeconds | int }}
  cancel_timeout_seconds: {{ $p.dagster.runMonitoring.cancelTimeoutSeconds | int }}
  max_resume_run_attempts: {{ $p.dagster.runMonitoring.maxResumeRunAttempts | int }}
  poll_interval_seconds: {{ $p.dagster.runMonitoring.pollIntervalSeconds | int }}
run_coordinator:
  # Dagster's QueuedRunCoordinator that also tags every submitted run (UI, GraphQL,
  # schedules, sensors, backfills, automation) with its resource profile
  # (src/lakeport/run_coordinator.py).
  module: lakeport.run_coordinator
  class: LakeportRunCoordinator
  config:
    max_concurrent_runs: {{ $p.dagster.runQueue.maxConcurrentRuns | int }}
    {{- with $p.dagster.runQueue.tagConcurrencyLimits }}
    tag_concurrency_limits:
      {{- range . }}
      - key: {{ .key | quote }}
        {{- if not (kindIs "invalid" .value) }}
        value: {{ .value | quote }}
        {{- end }}
        limit: {{ .limit | int }}
      {{- end }}
    {{- end }}
run_retries:
  enabled: {{ $p.dagster.runRetries.enabled }}
  max_retries: {{ $p.dagster.runRetries.maxRetries | int }}
retention:
  {{- range $kind, $key := dict "schedule" "schedule" "sensor" "sensor" "auto_materialize" "autoMaterialize" }}
  {{ $kind }}:
    purge_after_days:
      {{- $days := index $p.dagster.retention $key }}
      skipped: {{ $days.skipped | int }}
      success: {{ $days.success | int }}
      failure: {{ $days.failure | int }}
      started: {{ $days.started | int }}
  {{- end }}
{{- end -}}
