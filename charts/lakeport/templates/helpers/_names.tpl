{{/*
Names: the chart's, the release's prefix and every object name built from it, in one place
so templates and the effective platform (lakeport.effectivePlatform) agree on them.
*/}}

{{/*
The chart name, for the app.kubernetes.io/name label: a label value is 63 characters at
most (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/).
*/}}
{{- define "lakeport.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: the release name alone when it already contains the
chart name (helm install lakeport ...), else <release>-lakeport.
Truncated to 40 because names are built by appending suffixes to it, and a Service name
is an RFC 1035 label of 63 characters at most
(https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names).
The longest Service suffix is a code location's, "-code-" (6) + its name (17 at most,
LocationName in src/lakeport/platform.py): 40 + 23 = 63. The next longest Service suffix
is "-webserver-read-only" (20). trimSuffix drops a "-" the cut may leave at the end,
which a name may not end with.
*/}}
{{- define "lakeport.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Object names, each <fullname>-<suffix>. Templates and lakeport.effectivePlatform (which
writes the Service and Secret names it derives from them into the platform file) take
them from here, so pods and Python name the same objects.
*/}}
{{/* The ServiceAccount of Dagster's pods and run pods (and its Role's subject). */}}
{{- define "lakeport.dagsterServiceAccount" -}}{{ include "lakeport.fullname" . }}-dagster{{- end -}}
{{/* The ConfigMap with dagster.yaml; the run launcher names it to run pods too. */}}
{{- define "lakeport.instanceConfigMap" -}}{{ include "lakeport.fullname" . }}-dagster-instance{{- end -}}
{{/* The ConfigMap with the effective platform.yaml (and aws-config). */}}
{{- define "lakeport.platformConfigMap" -}}{{ include "lakeport.fullname" . }}-platform{{- end -}}
{{/* The ConfigMap of non-secret environment every lakeport pod loads (envFrom). */}}
{{- define "lakeport.envConfigMap" -}}{{ include "lakeport.fullname" . }}-env{{- end -}}
{{/* The ConfigMap with workspace.yaml (the code servers' addresses). */}}
{{- define "lakeport.workspaceConfigMap" -}}{{ include "lakeport.fullname" . }}-dagster-workspace{{- end -}}
{{/* The UI's Deployment, Service, Ingress and NetworkPolicy. */}}
{{- define "lakeport.webserverName" -}}{{ include "lakeport.fullname" . }}-webserver{{- end -}}
{{/* The read-only UI's Deployment and Service: the longest suffix after a code location's (20). */}}
{{- define "lakeport.readOnlyWebserverName" -}}{{ include "lakeport.fullname" . }}-webserver-read-only{{- end -}}
{{/* The daemon's Deployment. */}}
{{- define "lakeport.daemonName" -}}{{ include "lakeport.fullname" . }}-daemon{{- end -}}
{{/* A code location's Deployment and Service (the gRPC address in workspace.yaml).
Usage: include "lakeport.codeLocationName" (list . "demo"): at most 40 + 6 + 17 = 63. */}}
{{- define "lakeport.codeLocationName" -}}{{ include "lakeport.fullname" (index . 0) }}-code-{{ index . 1 }}{{- end -}}
{{/* The in-chart Postgres' StatefulSet, Services and generated Secret. */}}
{{- define "lakeport.postgresName" -}}{{ include "lakeport.fullname" . }}-postgres{{- end -}}
{{/* The in-chart Polaris' Deployment, Service and ServiceAccount; prefix of its Secrets and bootstrap Job. */}}
{{- define "lakeport.polarisName" -}}{{ include "lakeport.fullname" . }}-polaris{{- end -}}
{{/* The in-chart LocalStack's Deployment and Service; prefix of its credentials Secret. */}}
{{- define "lakeport.localstackName" -}}{{ include "lakeport.fullname" . }}-localstack{{- end -}}

{{/* The namespace run Jobs go to: dagster.runLauncher.jobNamespace, else the release's. */}}
{{- define "lakeport.jobNamespace" -}}
{{- .Values.dagster.runLauncher.jobNamespace | default .Release.Namespace -}}
{{- end -}}
