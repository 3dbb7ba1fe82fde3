{{/*
Environment of lakeport pods: the Secrets they read (by reference only), the non-secret
ConfigMap they load, and Polaris' persistence settings.
*/}}

{{/*
Secrets reach processes only as environment variables with fixed names
(src/lakeport/credentials.py), always by secretKeyRef. Returns a YAML list of env entries.
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

{{/* Non-secret environment every lakeport pod (and every run pod) loads with envFrom: the
env ConfigMap (platform file path, AWS region and endpoint). Returns an envFrom list. */}}
{{- define "lakeport.dagsterEnvFrom" -}}
- configMapRef:
    name: {{ include "lakeport.envConfigMap" . }}
{{- end -}}

{{/* The env of a Dagster pod (webserver, daemon, code server): DAGSTER_HOME, where
lakeport.dagsterVolumeMounts puts the instance, and the secret env. Returns an env list. */}}
{{- define "lakeport.dagsterEnv" -}}
- name: DAGSTER_HOME
  value: {{ include "lakeport.dagsterHome" . | quote }}
{{ include "lakeport.secretEnv" (dict "ctx" . "catalogOptional" true) }}
{{- end -}}

{{/*
Polaris server and admin tool: metastore in Postgres (relational-jdbc). Returns an env
list; the password by secretKeyRef.
Usage: include "lakeport.polarisPersistenceEnv" (dict "ctx" . "jdbc" $jdbcUrl)
*/}}
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
