{{/*
The lakeport image's contract with the chart: the user it runs as and the paths it
expects. images/lakeport/Dockerfile sets the same (ARG UID, DAGSTER_HOME), and
tests/e2e/test_kind_tooling.py reads these defines from this file to hold the two equal,
so they stay here. Every other helper is in helpers/, one file per concern.
*/}}

{{/* Where Dagster pods keep their instance: an emptyDir with dagster.yaml mounted into it. */}}
{{- define "lakeport.dagsterHome" -}}/opt/dagster/dagster_home{{- end -}}
{{/* Where pods mount the platform ConfigMap; lakeport.profiles.PLATFORM_MOUNT_PATH is the
same directory, for run pods of a non-default profile. */}}
{{- define "lakeport.platformDir" -}}/etc/lakeport{{- end -}}
{{/* The effective platform.yaml in that directory: LAKEPORT_PLATFORM_FILE of every pod. */}}
{{- define "lakeport.platformFile" -}}/etc/lakeport/platform.yaml{{- end -}}

{{/* The lakeport image runs as this non-root user (any uid works: files are world-readable). */}}
{{- define "lakeport.uid" -}}10001{{- end -}}

